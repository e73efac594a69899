"""A CRL or ARL handed in (signed offline) that omits a revocation the repository holds for
its scope would un-revoke that certificate for every relying party: it is refused, naming
the serials, unless the operator insists with --force, which is recorded with the CRL. Real
CLI subprocesses over a private copy of the demo, whose root has revoked one CA certificate."""
from __future__ import annotations

import datetime as dt
import sqlite3

from cryptography import x509

from crl_testlib import ARL, ROOT, copy_demo, load_cert, parse_crl, template_demo
from publisher import crl as crlmod
from publisher.signer import load_key_signer


def _arl(demo, *, with_entries: bool) -> bytes:
    """An ARL of the root signed with its key, as an offline ceremony would make it: the
    published ARL's entries, or none."""
    current = (demo.crl_dir / f"{ARL}.crl").read_bytes()
    parsed = parse_crl(current)
    number = parsed.crl_number_value.native + 1
    idp = x509.load_der_x509_crl(current).extensions.get_extension_for_class(x509.IssuingDistributionPoint).value
    entries = b"".join(e.dump() for e in parsed["tbs_cert_list"]["revoked_certificates"]) if with_entries else b""
    root = load_cert(demo.pki / f"{ROOT}.pem")
    now = dt.datetime.now(dt.timezone.utc).replace(microsecond=0)
    params = crlmod.CrlParams(issuer_name_der=root.subject.dump(), authority_key_id=root.key_identifier,
                              this_update=now, next_update=now + dt.timedelta(days=30), number=number,
                              kind=crlmod.ScopeKind.ARL, dp_url=idp.full_name[0].value)
    return crlmod.sign_crl(load_key_signer(demo.pki / f"{ROOT}.key"), params, entries)


def test_arl_omitting_a_revoked_ca_is_refused_unless_forced(tmp_path_factory, tmp_path):
    demo = copy_demo(template_demo(tmp_path_factory), tmp_path / "demo")
    revoked = [e.serial_number for e in x509.load_der_x509_crl((demo.crl_dir / f"{ARL}.crl").read_bytes())]
    assert len(revoked) == 1
    published = (demo.crl_dir / f"{ARL}.crl").read_bytes()
    empty = tmp_path / "empty-arl.crl"
    empty.write_bytes(_arl(demo, with_entries=False))
    p = demo.cli("crl", "add", str(empty))
    assert p.returncode == 2, (p.returncode, p.stdout, p.stderr)
    for named in ("empty-arl.crl", ARL, "omits 1 revoked", f"{revoked[0]:X}", "--force"):
        assert named in p.stderr, (named, p.stderr)
    assert (demo.crl_dir / f"{ARL}.crl").read_bytes() == published, "nothing published"
    # An ARL that lists the revocation is taken as it is.
    full = tmp_path / "arl.crl"
    full.write_bytes(_arl(demo, with_entries=True))
    p = demo.cli("crl", "add", str(full))
    assert p.returncode == 0, p.stderr
    assert (demo.crl_dir / f"{ARL}.crl").read_bytes() == full.read_bytes()
    # Forced: published, and the archive records that it was forced and what it omits.
    empty.write_bytes(_arl(demo, with_entries=False))
    p = demo.cli("crl", "add", str(empty), "--force")
    assert p.returncode == 0, p.stderr
    assert "forced" in p.stdout and f"{revoked[0]:X}" in p.stdout, p.stdout
    con = sqlite3.connect(demo.dir / "pkirepo.sqlite")
    (source,) = con.execute("SELECT source FROM crls ORDER BY id DESC LIMIT 1").fetchone()
    con.close()
    assert source.startswith("handed-in, forced") and f"{revoked[0]:X}" in source, source
