"""An import or `cert add` that fails keeps nothing: everything that could fail after the
certificates are written (the CRL names their distribution points would take) is checked
inside the same transaction, and a config that is wrong anywhere changes nothing. Real CLI
subprocesses over a private copy of the demo."""
from __future__ import annotations

import sqlite3

from cryptography.hazmat.primitives import serialization

from crl_testlib import copy_demo, issue_cert, make_tiny_ca, template_demo

CDP = "http://127.0.0.1/crl/TinyCA.crl"
# The operator's first attempt: the partition the certificates name takes the name that
# full_crl already has.
TINY = '''
[[ca]]
name = "TinyCA"
certificate = "pki/TinyCA.pem"
key = "pki/TinyCA.key"
full_crl = "TinyCA"
partitions = true
'''
FIXED = TINY + f'''
[ca.partition_names]
"{CDP}" = "TinyCA-part1"
'''


def stored(demo) -> tuple[int, int, int]:
    """(certificates, revoked entries, CRL scopes) in the store."""
    con = sqlite3.connect(demo.dir / "pkirepo.sqlite")
    try:
        return tuple(con.execute(f"SELECT count(*) FROM {t}").fetchone()[0]
                     for t in ("certificates", "revoked", "scopes"))
    finally:
        con.close()


def test_failed_import_and_cert_add_keep_nothing(tmp_path_factory, tmp_path):
    demo = copy_demo(template_demo(tmp_path_factory), tmp_path / "demo")
    ca, key = make_tiny_ca(demo.pki)
    certs = tmp_path / "newcerts"
    certs.mkdir()
    for serial in (0x10, 0x11, 0x12):
        (certs / f"{serial:X}.pem").write_bytes(issue_cert(ca, key, serial, CDP).public_bytes(serialization.Encoding.PEM))
    index = tmp_path / "index.txt"
    index.write_text("V\t301231235959Z\t\t10\tunknown\t/CN=sub 10\n"
                     "R\t301231235959Z\t250101000000Z,keyCompromise\t11\tunknown\t/CN=sub 11\n"
                     "V\t301231235959Z\t\t12\tunknown\t/CN=sub 12\n")
    with open(demo.config, "a") as f:
        f.write(TINY)
    before = stored(demo)
    p = demo.cli("import", "openssl-index", str(index), "--ca", str(demo.pki / "TinyCA.pem"), "--certs", str(certs))
    assert p.returncode == 2, (p.returncode, p.stderr)
    for named in ("'TinyCA'", CDP, "full CRL of TinyCA", "partition_names"):
        assert named in p.stderr, (named, p.stderr)
    assert "Traceback" not in p.stderr
    # Only the config's own scope (TinyCA's full CRL) may be new; no certificate, no revocation.
    assert stored(demo)[:2] == before[:2]
    p = demo.cli("cert", "add", str(certs / "10.pem"))
    assert p.returncode == 2 and "partition_names" in p.stderr, p.stderr
    assert stored(demo)[:2] == before[:2]
    # The store is not left in a state every later command trips over.
    assert demo.cli("crl", "list").returncode == 0
    # With the partition named, the same import goes through, whole.
    demo.config.write_text(demo.config.read_text().replace(TINY, FIXED))
    p = demo.cli("import", "openssl-index", str(index), "--ca", str(demo.pki / "TinyCA.pem"), "--certs", str(certs))
    assert p.returncode == 0, p.stderr
    assert "imported 3 certificate(s), 1 revoked" in p.stdout
    assert stored(demo)[:2] == (before[0] + 3, before[1] + 1)


def test_config_wrong_in_a_later_ca_writes_nothing(tmp_path_factory, tmp_path):
    """A CRL name of a new CA colliding with a partition the store already publishes (which
    the config cannot see) is refused before any CA is stored."""
    demo = copy_demo(template_demo(tmp_path_factory), tmp_path / "demo")
    make_tiny_ca(demo.pki)
    with open(demo.config, "a") as f:
        f.write(TINY.replace('full_crl = "TinyCA"', 'full_crl = "eCertCA2-17CRL2"'))
    con = sqlite3.connect(demo.dir / "pkirepo.sqlite")
    issuers = con.execute("SELECT count(*) FROM issuers").fetchone()[0]
    p = demo.cli("crl", "list")
    assert p.returncode == 2, p.stderr
    for named in ("'eCertCA2-17CRL2'", "full CRL of TinyCA", "partition CRL", "of eCertCA2-17"):
        assert named in p.stderr, (named, p.stderr)
    assert con.execute("SELECT count(*) FROM issuers").fetchone()[0] == issuers
    con.close()
