"""Reading certificates: PEM/DER bundles in, the facts the store keeps out. Pure."""
from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.x509.oid import ExtensionOID

from .errors import MalformedInput, VerificationError

PEM_RE = re.compile(rb"-----BEGIN CERTIFICATE-----\s.*?-----END CERTIFICATE-----", re.S)


EXPECTED_CERTIFICATE = "expected a PEM or DER X.509 certificate"


def split_certificates(data: bytes, source: str) -> list[x509.Certificate]:
    """All certificates in a PEM bundle, or the one in a DER file.

    The parser's own words (`ParseError { kind: ShortData ... }`) tell an operator nothing:
    the error names the file and what it should have held."""
    if not data.strip():
        raise MalformedInput(f"{source}: not a certificate: the file is empty ({EXPECTED_CERTIFICATE})")
    if b"-----BEGIN" in data:
        blocks = PEM_RE.findall(data)
        if not blocks:
            raise MalformedInput(f"{source}: not a certificate: no PEM CERTIFICATE block ({EXPECTED_CERTIFICATE})")
        out = []
        for n, block in enumerate(blocks):
            try:
                out.append(x509.load_pem_x509_certificate(block))
            except ValueError:
                raise MalformedInput(
                    f"{source}: not a certificate: PEM CERTIFICATE block {n + 1} does not decode "
                    f"({EXPECTED_CERTIFICATE})") from None
        return out
    try:
        return [x509.load_der_x509_certificate(data)]
    except ValueError:
        raise MalformedInput(f"{source}: not a certificate: neither PEM nor valid DER ({EXPECTED_CERTIFICATE})") from None


def key_identifier(cert: x509.Certificate) -> bytes:
    """The subjectKeyIdentifier, or RFC 5280 §4.2.1.2 method 1 when the extension is absent."""
    try:
        return cert.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value.digest
    except x509.ExtensionNotFound:
        return x509.SubjectKeyIdentifier.from_public_key(cert.public_key()).digest


def public_key_bits(cert: x509.Certificate) -> bytes:
    """The subjectPublicKey BIT STRING contents (what OCSP's issuerKeyHash hashes)."""
    from asn1crypto import keys

    spki = cert.public_key().public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    return keys.PublicKeyInfo.load(spki)["public_key"].contents[1:]


def subject_der(cert: x509.Certificate) -> bytes:
    return cert.subject.public_bytes()


def issuer_der(cert: x509.Certificate) -> bytes:
    return cert.issuer.public_bytes()


def is_ca(cert: x509.Certificate) -> bool:
    try:
        return cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    except x509.ExtensionNotFound:
        return False


def crl_dp_url(cert: x509.Certificate) -> str | None:
    """The first http(s) URI among the fullNames of the certificate's CRL distribution points
    (the URL that names its CRL partition), or None."""
    try:
        dps = cert.extensions.get_extension_for_oid(ExtensionOID.CRL_DISTRIBUTION_POINTS).value
    except x509.ExtensionNotFound:
        return None
    for dp in dps:
        for name in dp.full_name or ():
            if isinstance(name, x509.UniformResourceIdentifier) and name.value.lower().startswith(("http://", "https://")):
                return name.value
    return None


def verify_issued_by(cert: x509.Certificate, issuer: x509.Certificate, source: str) -> None:
    try:
        cert.verify_directly_issued_by(issuer)
    except (ValueError, TypeError) as e:
        raise VerificationError(f"{source}: not issued by {issuer.subject.rfc4514_string()}: {e}") from e
    except Exception as e:  # InvalidSignature has no message
        raise VerificationError(
            f"{source}: signature does not verify against {issuer.subject.rfc4514_string()}") from e


@dataclass(frozen=True)
class Fingerprint:
    sha256: str

    @classmethod
    def of(cls, der: bytes) -> "Fingerprint":
        return cls(hashlib.sha256(der).hexdigest())
