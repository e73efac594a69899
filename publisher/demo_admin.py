"""The demo's admin API credentials: an admin client CA, the listener's TLS certificate,
and one client certificate and key per role, under the demo's `pki/`, with the `[admin]`
config section that grants each its role. EC P-256 throughout: quick to make and to use."""
from __future__ import annotations

import datetime as dt
import ipaddress
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from .admin_auth import ROLES

_O = "Hongkong Post Demo"


def _name(cn: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COUNTRY_NAME, "HK"),
                      x509.NameAttribute(NameOID.ORGANIZATION_NAME, _O),
                      x509.NameAttribute(NameOID.COMMON_NAME, cn)])


def _write(path: Path, cert: x509.Certificate, key: ec.EllipticCurvePrivateKey | None = None) -> None:
    path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    if key is not None:
        keyfile = path.with_suffix(".key")
        keyfile.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                              serialization.NoEncryption()))
        keyfile.chmod(0o600)


def issue(ca: x509.Certificate, ca_key, cn: str, *, now: dt.datetime, days: int = 825, server_host: str | None = None,
          not_before: dt.datetime | None = None) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    """A leaf certificate from the admin CA: a client's (clientAuth) or, with `server_host`,
    the listener's (serverAuth, that host as its subjectAltName)."""
    key = ec.generate_private_key(ec.SECP256R1())
    start = not_before or now - dt.timedelta(hours=1)
    b = (x509.CertificateBuilder().subject_name(_name(cn)).issuer_name(ca.subject).public_key(key.public_key())
         .serial_number(x509.random_serial_number()).not_valid_before(start)
         .not_valid_after(start + dt.timedelta(days=days))
         .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
         .add_extension(x509.KeyUsage(True, False, False, False, True, False, False, False, False), critical=True)
         .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False))
    if server_host is None:
        b = b.add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False)
    else:
        try:
            alt: x509.GeneralName = x509.IPAddress(ipaddress.ip_address(server_host))
        except ValueError:
            alt = x509.DNSName(server_host)
        names = [alt] + ([x509.DNSName("localhost")] if server_host != "localhost" else [])
        b = (b.add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
              .add_extension(x509.SubjectAlternativeName(names), critical=False))
    return b.sign(ca_key, hashes.SHA256()), key


def make_ca(cn: str, *, now: dt.datetime) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (x509.CertificateBuilder().subject_name(_name(cn)).issuer_name(_name(cn)).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - dt.timedelta(hours=1))
            .not_valid_after(now + dt.timedelta(days=3650))
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(x509.KeyUsage(False, False, False, False, False, True, True, False, False), critical=True)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
            .sign(key, hashes.SHA256()))
    return cert, key


def make_admin_pki(directory: Path, *, listen: tuple[str, int], now: dt.datetime) -> str:
    """Write the admin CA (`pki/admin-ca.pem`, `.key`), the listener's certificate
    (`pki/admin-server.pem`, `.key`) and `pki/admin-<role>.pem` and `.key` for each role;
    returns the `[admin]` config section that uses them."""
    pki = Path(directory) / "pki"
    pki.mkdir(parents=True, exist_ok=True)
    ca, ca_key = make_ca("Demo Admin Client CA", now=now)
    _write(pki / "admin-ca.pem", ca, ca_key)
    host, port = listen
    server, server_key = issue(ca, ca_key, "Demo admin API", now=now, server_host=host)
    _write(pki / "admin-server.pem", server, server_key)
    lines = [
        "# The admin API (pushes from the CA's systems): HTTPS on its own listener, client",
        "# certificates from the demo's admin CA, one per role (pki/admin-<role>.pem and .key).",
        "[admin]",
        "enabled = true",
        f'listen = "{f"[{host}]" if ":" in host else host}:{port}"',
        'certificate = "pki/admin-server.pem"',
        'key = "pki/admin-server.key"',
        'client_cas = ["pki/admin-ca.pem"]',
        "max_batch = 100",
        "idempotency_hours = 24",
    ]
    for role in ROLES:
        cert, key = issue(ca, ca_key, f"Demo admin {role}", now=now)
        _write(pki / f"admin-{role}.pem", cert, key)
        lines += ["", "[[admin.clients]]", f'subject = "{cert.subject.rfc4514_string()}"', f'roles = ["{role}"]']
    return "\n".join(lines) + "\n"
