"""`pkirepo cert show` names the DN where the directory publishes a certificate, and the
directory served by `pkirepo serve` has it there (none for a revoked one)."""
from __future__ import annotations

import json
import os
import subprocess

from cryptography import x509


def _show(demo, name: str) -> dict:
    serial = x509.load_pem_x509_certificate((demo.pki / name).read_bytes()).serial_number
    p = demo.cli("cert", "show", "--issuer", "eCertCA2-17", "--serial", f"{serial:X}", "--json")
    return json.loads(p.stdout)


def test_cert_show_names_the_ldap_entry(shared_server, shared_demo):
    dn = _show(shared_demo, "good.pem")["ldap_dn"]
    assert dn and dn.startswith("uid=")
    p = subprocess.run(["ldapsearch", "-x", "-LLL", "-o", "ldif-wrap=no", "-H",
                        f"ldap://127.0.0.1:{shared_demo.ldap_port}", "-b", dn, "-s", "base", "uid"],
                       capture_output=True, text=True, timeout=30, env={**os.environ, "LDAPNOINIT": "1"})
    assert p.returncode == 0, p.stderr
    assert f"dn: {dn}" in p.stdout
    assert _show(shared_demo, "revoked.pem")["ldap_dn"] is None
