"""A small PKI for the OCSP unit tests, with pinned times and deterministic EC keys.

Used by tests/ocsp/conftest.py; also a script that writes the same files, so they can be
looked at with openssl:  .venv/bin/python tests/ocsp/ocsp_pki.py DIR
ECDSA signatures are randomised, so certificates differ between runs; names, keys, serials
and times do not.
"""
from __future__ import annotations

import datetime as dt
import sys
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

UTC = dt.timezone.utc
#: The moment the unit tests answer at.
NOW = dt.datetime(2026, 1, 15, 12, 0, 0, tzinfo=UTC)
CA_NOT_BEFORE = dt.datetime(2025, 1, 1, tzinfo=UTC)
CA_NOT_AFTER = dt.datetime(2045, 1, 1, tzinfo=UTC)
# Long enough that openssl can check these responses at today's date as well.
RESPONDER_NOT_BEFORE = dt.datetime(2026, 1, 1, tzinfo=UTC)
RESPONDER_NOT_AFTER = dt.datetime(2040, 1, 1, tzinfo=UTC)

GOOD_SERIAL = 0x1001
REVOKED_SERIAL = 0x1002
HOLD_SERIAL = 0x1003
NEVER_ISSUED_SERIAL = 0x7777


@dataclass(frozen=True)
class CA:
    name: str
    key: object
    cert: x509.Certificate
    responder_key: object
    responder_cert: x509.Certificate
    leaves: dict[int, x509.Certificate]

    @property
    def cert_der(self) -> bytes:
        return self.cert.public_bytes(serialization.Encoding.DER)

    @property
    def responder_der(self) -> bytes:
        return self.responder_cert.public_bytes(serialization.Encoding.DER)


def _ec_key(seed: int):
    return ec.derive_private_key(seed, ec.SECP256R1())


def _name(cn: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, "pkirepo tests"), x509.NameAttribute(NameOID.COMMON_NAME, cn)])


def _ski(key) -> x509.SubjectKeyIdentifier:
    return x509.SubjectKeyIdentifier.from_public_key(key.public_key())


def make_ca(name: str, key, *, serial: int = 1) -> CA:
    ca_cert = (
        x509.CertificateBuilder()
        .subject_name(_name(name))
        .issuer_name(_name(name))
        .public_key(key.public_key())
        .serial_number(serial)
        .not_valid_before(CA_NOT_BEFORE)
        .not_valid_after(CA_NOT_AFTER)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(False, False, False, False, False, True, True, False, False), critical=True
        )
        .add_extension(_ski(key), critical=False)
        .sign(key, hashes.SHA256())
    )
    aki = x509.AuthorityKeyIdentifier.from_issuer_public_key(key.public_key())
    responder_key = _ec_key(0x5EED0000 + serial)
    responder_cert = (
        x509.CertificateBuilder()
        .subject_name(_name(f"{name} OCSP responder"))
        .issuer_name(ca_cert.subject)
        .public_key(responder_key.public_key())
        .serial_number(0x0C59)
        .not_valid_before(RESPONDER_NOT_BEFORE)
        .not_valid_after(RESPONDER_NOT_AFTER)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(True, False, False, False, False, False, False, False, False), critical=True
        )
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.OCSP_SIGNING]), critical=False)
        .add_extension(x509.OCSPNoCheck(), critical=False)
        .add_extension(_ski(responder_key), critical=False)
        .add_extension(aki, critical=False)
        .sign(key, hashes.SHA256())
    )
    leaves = {}
    for leaf_serial in (GOOD_SERIAL, REVOKED_SERIAL, HOLD_SERIAL):
        leaf_key = _ec_key(0x1EAF0000 + leaf_serial)
        leaves[leaf_serial] = (
            x509.CertificateBuilder()
            .subject_name(_name(f"leaf {leaf_serial:#x}"))
            .issuer_name(ca_cert.subject)
            .public_key(leaf_key.public_key())
            .serial_number(leaf_serial)
            .not_valid_before(RESPONDER_NOT_BEFORE)
            .not_valid_after(RESPONDER_NOT_AFTER)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(aki, critical=False)
            .sign(key, hashes.SHA256())
        )
    return CA(name, key, ca_cert, responder_key, responder_cert, leaves)


def make_ec_ca() -> CA:
    return make_ca("Test EC CA", _ec_key(0xCA01), serial=1)


def make_rsa_ca() -> CA:
    # RSA key generation is not deterministic; the tests only rely on names and serials.
    return make_ca("Test RSA CA", rsa.generate_private_key(65537, 2048), serial=2)


def write(ca: CA, directory: Path) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    pem = serialization.Encoding.PEM
    (directory / "ca.pem").write_bytes(ca.cert.public_bytes(pem))
    (directory / "responder.pem").write_bytes(ca.responder_cert.public_bytes(pem))
    key_path = directory / "responder.key"
    key_path.write_bytes(
        ca.responder_key.private_bytes(pem, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    key_path.chmod(0o600)
    for serial, leaf in ca.leaves.items():
        (directory / f"leaf-{serial:x}.pem").write_bytes(leaf.public_bytes(pem))


if __name__ == "__main__":
    out = Path(sys.argv[1])
    write(make_ec_ca(), out / "ec")
    write(make_rsa_ca(), out / "rsa")
    print(f"wrote {out}/ec and {out}/rsa")
