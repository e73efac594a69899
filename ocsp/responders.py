"""Who signs for each CA, and whether it may sign right now.

A problem with a responder (missing or unreadable file, a certificate another CA issued,
no OCSPSigning EKU, a key that does not match, expiry) does not stop the server: the CRL
repository goes on, that CA's OCSP answers are `tryLater`, and readiness reports why. A
responder that cannot sign correct responses must not sign any.
"""
from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Mapping
from dataclasses import dataclass

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509.oid import ExtendedKeyUsageOID

from publisher.errors import ConfigError
from publisher.signer import Signer, load_key_signer
from publisher.store import Issuer

from .config import OcspSettings, SignerMode
from .issuers import issuer_hashes
from .request import HashAlgorithm
from .response import ResponderIdentity

log = logging.getLogger("pkirepo.ocsp")


@dataclass(frozen=True)
class IssuerResponder:
    issuer_id: int
    name: str
    ca_certificate_der: bytes
    identity: ResponderIdentity | None
    not_before: dt.datetime | None = None
    not_after: dt.datetime | None = None
    #: Why this responder cannot sign at all (None: it can, within its validity).
    problem: str | None = None

    def problem_at(self, now: dt.datetime) -> str | None:
        """Why this CA's responses cannot be signed or served at `now`, or None."""
        if self.problem is not None:
            return self.problem
        if self.not_before is not None and now < self.not_before:
            return f"responder certificate of {self.name} is not valid before {self.not_before.isoformat()}"
        if self.not_after is not None and now >= self.not_after:
            return f"responder certificate of {self.name} expired at {self.not_after.isoformat()}"
        return None

    def issuer_name_key_hashes(self, hash_algorithm: HashAlgorithm) -> tuple[bytes, bytes]:
        h = issuer_hashes(self.ca_certificate_der, hash_algorithm)
        return h.name_hash, h.key_hash


def _load_certificate(data: bytes) -> x509.Certificate:
    if b"-----BEGIN" in data:
        return x509.load_pem_x509_certificate(data)
    return x509.load_der_x509_certificate(data)


def _delegated(settings: OcspSettings, issuer: Issuer, ca_cert: x509.Certificate) -> IssuerResponder:
    files = settings.responder_files(issuer.name)
    base = IssuerResponder(issuer.id, issuer.name, issuer.cert_der, None)
    if files is None:
        return _with_problem(base, f"CA {issuer.name} has no ocsp_responder / ocsp_responder_key in config")
    try:
        cert = _load_certificate(files.certificate.read_bytes())
    except OSError as e:
        return _with_problem(base, f"{files.where}.ocsp_responder: cannot read {files.certificate}: {e.strerror}")
    except ValueError as e:
        return _with_problem(base, f"{files.where}.ocsp_responder: {files.certificate} is not a certificate: {e}")
    try:
        signer = load_key_signer(
            files.key,
            passphrase_file=files.key_passphrase_file,
            passphrase_env=files.key_passphrase_env,
            what=f"{files.where}.ocsp_responder_key",
        )
    except ConfigError as e:
        return _with_problem(base, e.message)
    where = f"{files.where}.ocsp_responder ({files.certificate})"
    if cert.issuer != ca_cert.subject:
        return _with_problem(base, f"{where} is not issued by CA {issuer.name}")
    try:
        cert.verify_directly_issued_by(ca_cert)
    except (InvalidSignature, ValueError, TypeError) as e:
        return _with_problem(base, f"{where}: signature does not verify against CA {issuer.name}: {e!r}")
    try:
        eku = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    except x509.ExtensionNotFound:
        eku = []
    if ExtendedKeyUsageOID.OCSP_SIGNING not in eku:
        return _with_problem(base, f"{where} lacks the extended key usage id-kp-OCSPSigning")
    try:
        cert.extensions.get_extension_for_class(x509.OCSPNoCheck)
    except x509.ExtensionNotFound:
        log.warning("%s has no id-pkix-ocsp-nocheck: relying parties may try to check the responder itself", where)
    try:
        identity = ResponderIdentity.from_certificate(
            signer, cert.public_bytes(Encoding.DER), include_certificate=settings.include_certificate
        )
    except ValueError:
        return _with_problem(base, f"{files.where}.ocsp_responder_key does not belong to {files.certificate}")
    return IssuerResponder(
        issuer.id, issuer.name, issuer.cert_der, identity, cert.not_valid_before_utc, cert.not_valid_after_utc
    )


def _with_problem(base: IssuerResponder, problem: str) -> IssuerResponder:
    log.error("OCSP for %s is not ready: %s", base.name, problem)
    return IssuerResponder(base.issuer_id, base.name, base.ca_certificate_der, None, problem=problem)


def load_responders(
    settings: OcspSettings, issuers: list[Issuer], ca_signers: Mapping[str, Signer]
) -> dict[int, IssuerResponder]:
    """One IssuerResponder per issuer id, each with its identity or the reason it has none."""
    out: dict[int, IssuerResponder] = {}
    for issuer in issuers:
        ca_cert = x509.load_der_x509_certificate(issuer.cert_der)
        if settings.signer is SignerMode.DELEGATED:
            out[issuer.id] = _delegated(settings, issuer, ca_cert)
            continue
        base = IssuerResponder(issuer.id, issuer.name, issuer.cert_der, None)
        signer = ca_signers.get(issuer.name)
        if signer is None:
            out[issuer.id] = _with_problem(base, f"[ocsp] signer = \"ca\", but CA {issuer.name} has no key in config")
            continue
        identity = ResponderIdentity.from_certificate(
            signer, issuer.cert_der, include_certificate=settings.include_certificate
        )
        out[issuer.id] = IssuerResponder(
            issuer.id, issuer.name, issuer.cert_der, identity, ca_cert.not_valid_before_utc, ca_cert.not_valid_after_utc
        )
    return out
