"""Every command exits promptly with its error and exit 2 on every error path: no aiosqlite
thread left behind keeps the process alive, and no parser's internals reach the operator.
Real `pkirepo` subprocesses, each under a timeout, over private copies of the demo."""
from __future__ import annotations

import subprocess
from concurrent.futures import ThreadPoolExecutor

import pytest

from crl_testlib import CA, copy_demo, make_tiny_ca, run_cli, template_demo

TIMEOUT = 30  # a command that has not exited by then hangs (they take about a second)

COMMANDS = [
    ("crl", "list"),
    ("publish",),
    ("check",),
    ("revoke", "--issuer", CA, "--serial", "1234"),
    ("hold", "--issuer", CA, "--serial", "1234"),
]


def run(demo, *args: str) -> subprocess.CompletedProcess:
    try:
        return run_cli(*args, "--config", str(demo.config), timeout=TIMEOUT)
    except subprocess.TimeoutExpired:
        raise AssertionError(f"pkirepo {' '.join(args)} did not exit within {TIMEOUT}s") from None


def assert_exit_2(p, *named: str) -> None:
    text = p.stderr + p.stdout
    assert p.returncode == 2, (p.args, p.returncode, text)
    assert "Traceback" not in text and "ParseError" not in text, text
    for n in named:
        assert n in text, (n, p.args, text)


def run_all(demo, cases):
    with ThreadPoolExecutor(max_workers=3) as pool:
        return list(pool.map(lambda c: run(demo, *c[0]), cases))


@pytest.fixture
def demo(tmp_path_factory, tmp_path):
    return copy_demo(template_demo(tmp_path_factory), tmp_path / "demo")


def test_wrong_key_for_first_ca(demo):
    demo.set_config('key = "pki/RootCA2.key"', f'key = "pki/{CA}.key"')
    # Only the commands that sign read the keys.
    cases = [(c, ["ca[0].key does not belong"]) for c in [("publish",), ("publish", "--issuer", CA, "--due")]]
    for (args, named), p in zip(cases, run_all(demo, cases)):
        assert_exit_2(p, *named)


def test_crl_name_of_config_taken_in_the_store(demo):
    make_tiny_ca(demo.pki)
    with open(demo.config, "a") as f:
        f.write('\n[[ca]]\nname = "TinyCA"\ncertificate = "pki/TinyCA.pem"\nkey = "pki/TinyCA.key"\n'
                'full_crl = "eCertCA2-17CRL2"\n')
    cases = [(c, ["'eCertCA2-17CRL2'", "full CRL of TinyCA"]) for c in COMMANDS]
    cases.append((("crl", "add", str(demo.crl_dir / "eCertCA2-17CRL1.crl")), ["'eCertCA2-17CRL2'"]))
    for (args, named), p in zip(cases, run_all(demo, cases)):
        assert_exit_2(p, *named)


def test_missing_empty_and_garbage_files(demo, tmp_path):
    empty = tmp_path / "empty.pem"
    empty.write_bytes(b"")
    garbage = tmp_path / "garbage.der"
    garbage.write_bytes(b"\x30\x10not a certificate at all")
    certs = tmp_path / "newcerts"
    certs.mkdir()
    (certs / "10.pem").write_bytes(b"")
    index = tmp_path / "index.txt"
    index.write_text("V\t301231235959Z\t\t10\tunknown\t/CN=one\n")
    ca_pem = str(demo.pki / f"{CA}.pem")
    cases = [
        (("cert", "add", str(tmp_path / "missing.pem")), ["missing.pem", "cannot read"]),
        (("cert", "add", str(empty)), ["empty.pem", "empty", "expected a PEM or DER X.509 certificate"]),
        (("cert", "add", str(garbage)), ["garbage.der", "expected a PEM or DER X.509 certificate"]),
        (("crl", "add", str(tmp_path / "missing.crl")), ["missing.crl", "cannot read"]),
        (("crl", "add", str(empty)), ["empty.pem", "expected a DER or PEM CRL"]),
        (("crl", "add", str(garbage)), ["garbage.der", "expected a DER or PEM CRL"]),
        (("import", "openssl-index", str(tmp_path / "missing.txt"), "--ca", ca_pem), ["missing.txt", "cannot read"]),
        (("import", "openssl-index", str(index), "--ca", str(tmp_path / "missing.pem")), ["missing.pem", "cannot read"]),
        (("import", "openssl-index", str(index), "--ca", str(garbage)),
         ["garbage.der", "expected a PEM or DER X.509 certificate"]),
        (("import", "openssl-index", str(index), "--ca", ca_pem, "--certs", str(certs)),
         ["10.pem", "expected a PEM or DER X.509 certificate"]),
    ]
    for (args, named), p in zip(cases, run_all(demo, cases)):
        assert_exit_2(p, *named)
