"""Building OCSP responses (RFC 6960 §4.2) from pre-encoded pieces.

Pure: times are passed in, the signer is passed in, bytes come out. A SingleResponse is
encoded once (`SingleResponse.der()`) and can be kept; a response is then the join of those
pieces, a responder ID, producedAt and optional extensions, signed. This is what lets the
pre-signing loop and the nonce path share one builder and lets the hot path never sign.
"""
from __future__ import annotations

import datetime as dt
import enum
import functools
import hashlib
from collections.abc import Sequence
from dataclasses import dataclass

from asn1crypto import x509 as asn1_x509
from cryptography.hazmat.primitives import serialization

from publisher import der
from publisher.crl import Reason
from publisher.signer import Signer

from .request import OID_NONCE, HashAlgorithm, Nonce

OID_BASIC_RESPONSE = "1.3.6.1.5.5.7.48.1.1"
OID_EXTENDED_REVOKE = "1.3.6.1.5.5.7.48.1.9"
#: RFC 6960 §2.2: the revocationTime of a never-issued serial answered as revoked.
EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.timezone.utc)


class ResponseStatus(enum.IntEnum):
    """OCSPResponseStatus (RFC 6960 §4.2.1); 4 is not used."""

    SUCCESSFUL = 0
    MALFORMED_REQUEST = 1
    INTERNAL_ERROR = 2
    TRY_LATER = 3
    SIG_REQUIRED = 5
    UNAUTHORIZED = 6


class CertStatus(enum.Enum):
    GOOD = "good"
    REVOKED = "revoked"
    UNKNOWN = "unknown"


_UNSUCCESSFUL = {s: der.sequence(der.enumerated(int(s))) for s in ResponseStatus if s != ResponseStatus.SUCCESSFUL}


def unsuccessful(status: ResponseStatus | int) -> bytes:
    """An OCSPResponse without responseBytes: malformedRequest, tryLater, and so on."""
    status = ResponseStatus(status)
    if status == ResponseStatus.SUCCESSFUL:
        raise ValueError("a successful response needs responseBytes: use build_response()")
    return _UNSUCCESSFUL[status]


def cert_id_der(hash_algorithm: HashAlgorithm, issuer_name_hash: bytes, issuer_key_hash: bytes, serial: int) -> bytes:
    """A CertID in the form OpenSSL sends (hash AlgorithmIdentifier with NULL parameters)."""
    return der.sequence(
        der.sequence(der.oid(hash_algorithm.oid), der.tlv(der.NULL, b"")),
        der.octet_string(issuer_name_hash),
        der.octet_string(issuer_key_hash),
        der.integer(serial),
    )


def _whole_seconds(when: dt.datetime, what: str) -> dt.datetime:
    if when.tzinfo is None:
        raise ValueError(f"{what}: naive datetime, pass an aware UTC time")
    return when.replace(microsecond=0)


@dataclass(frozen=True)
class SingleResponse:
    """The answer about one certificate."""

    cert_id_der: bytes
    status: CertStatus
    this_update: dt.datetime
    next_update: dt.datetime | None = None
    revocation_time: dt.datetime | None = None
    reason: Reason | None = None

    def __post_init__(self) -> None:
        if self.status is CertStatus.REVOKED:
            if self.revocation_time is None:
                raise ValueError("a revoked SingleResponse needs revocation_time")
        elif self.revocation_time is not None or self.reason is not None:
            raise ValueError(f"a {self.status.value} SingleResponse has no revocation_time or reason")
        if self.next_update is not None and self.next_update < self.this_update:
            raise ValueError("next_update is before this_update")

    def der(self) -> bytes:
        if self.status is CertStatus.GOOD:
            status = der.implicit_primitive(0, b"")
        elif self.status is CertStatus.UNKNOWN:
            status = der.implicit_primitive(2, b"")
        else:
            assert self.revocation_time is not None
            info = der.generalized_time(_whole_seconds(self.revocation_time, "revocation_time"))
            if self.reason is not None:
                info += der.explicit(0, der.enumerated(int(self.reason)))
            status = der.implicit_constructed(1, info)
        parts = [self.cert_id_der, status, der.generalized_time(_whole_seconds(self.this_update, "this_update"))]
        if self.next_update is not None:
            parts.append(der.explicit(0, der.generalized_time(_whole_seconds(self.next_update, "next_update"))))
        return der.sequence(*parts)


def never_issued(cert_id_der: bytes, this_update: dt.datetime, next_update: dt.datetime | None) -> SingleResponse:
    """RFC 6960 §2.2: a serial the CA never issued, answered revoked with reason
    certificateHold at 1970-01-01. The response must then carry the Extended Revoked
    Definition extension: pass `extended_revoke=True` to `build_response`."""
    return SingleResponse(
        cert_id_der,
        CertStatus.REVOKED,
        this_update,
        next_update,
        revocation_time=EPOCH,
        reason=Reason.certificateHold,
    )


def public_key_bits(certificate_der: bytes) -> bytes:
    """The subjectPublicKey BIT STRING's value (without the unused-bits octet)."""
    cert = asn1_x509.Certificate.load(certificate_der)
    bits = cert["tbs_certificate"]["subject_public_key_info"]["public_key"].contents
    if not bits or bits[0] != 0:
        raise ValueError("subjectPublicKey has unused bits")
    return bits[1:]


@dataclass(frozen=True)
class ResponderIdentity:
    """Who signs: a signer and the certificate for its key (delegated responder or CA)."""

    signer: Signer
    certificate_der: bytes
    #: SHA-1 of the responder's public key bits: the responderID byKey (RFC 6960 §4.2.1).
    key_hash: bytes
    #: Put the certificate into `certs`; required for a delegated responder, whose
    #: certificate the client does not otherwise have.
    include_certificate: bool = True

    @classmethod
    def from_certificate(cls, signer: Signer, certificate_der: bytes, *, include_certificate: bool = True) -> ResponderIdentity:
        """Bind a signer to its certificate, refusing a certificate for another key."""
        cert_spki = asn1_x509.Certificate.load(certificate_der)["tbs_certificate"]["subject_public_key_info"].dump()
        signer_spki = signer.public_key().public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        if cert_spki != signer_spki:
            raise ValueError("the responder certificate is not for the signer's key")
        key_hash = hashlib.sha1(public_key_bits(certificate_der)).digest()
        return cls(signer, certificate_der, key_hash, include_certificate)

    @functools.cached_property
    def certs_der(self) -> bytes:
        """The `certs` field every response of this responder carries (b"" for none),
        encoded once and shared by every answer kept in memory."""
        return certs_field(self.certificate_der) if self.include_certificate else b""


def nonce_extension(nonce: Nonce) -> bytes:
    """The nonce echo: the extnValue exactly as the client sent it (see `Nonce`)."""
    return der.extension(OID_NONCE, nonce.extn_value)


_EXTENDED_REVOKE = der.extension(OID_EXTENDED_REVOKE, der.tlv(der.NULL, b""))


def response_data(
    responder_key_hash: bytes,
    produced_at: dt.datetime,
    single_responses: Sequence[SingleResponse | bytes],
    *,
    nonce: Nonce | None = None,
    extended_revoke: bool = False,
) -> bytes:
    """The tbsResponseData (ResponseData) a responder signs: responderID byKey, producedAt,
    the SingleResponses (or their DER) in request order, and the optional extensions."""
    if not single_responses:
        raise ValueError("a response needs at least one SingleResponse")
    singles = b"".join(s if isinstance(s, bytes) else s.der() for s in single_responses)
    extensions = []
    if nonce is not None:
        extensions.append(nonce_extension(nonce))
    if extended_revoke:
        extensions.append(_EXTENDED_REVOKE)
    parts = [
        der.explicit(2, der.octet_string(responder_key_hash)),  # responderID byKey
        der.generalized_time(_whole_seconds(produced_at, "produced_at")),
        der.sequence(singles),
    ]
    if extensions:
        parts.append(der.explicit(1, der.sequence(*extensions)))
    return der.sequence(*parts)


def signed_part(tbs: bytes, algorithm_der: bytes, signature: bytes) -> bytes:
    """What a pre-signed answer stores: the BasicOCSPResponse's content without `certs`
    (tbsResponseData, signatureAlgorithm, signature). The responder certificate is the same
    for every answer, so it is kept once and joined in when serving (`assemble`)."""
    return tbs + algorithm_der + der.bit_string(signature)


def certs_field(certificate_der: bytes) -> bytes:
    """The BasicOCSPResponse `certs` field holding one certificate."""
    return der.explicit(0, der.sequence(certificate_der))


def assemble(signed: bytes, certs: bytes = b"") -> bytes:
    """The OCSPResponse a client receives: a stored `signed_part` and the pre-encoded
    `certs_field` (or nothing), wrapped by concatenation. Signs nothing."""
    basic = der.tlv(0x30, signed + certs)
    return der.sequence(_SUCCESSFUL, der.explicit(0, der.sequence(_BASIC_OID, der.octet_string(basic))))


_SUCCESSFUL = der.enumerated(0)
_BASIC_OID = der.oid(OID_BASIC_RESPONSE)


def single_of(signed: bytes) -> bytes:
    """The SingleResponse DER of a `signed_part` holding exactly one (a pre-signed answer),
    for signing it again with a nonce."""
    _, start, _ = der.read_tlv(signed)  # ResponseData
    _, _, pos = der.read_tlv(signed, start)  # responderID
    _, _, pos = der.read_tlv(signed, pos)  # producedAt
    tag, s_start, s_end = der.read_tlv(signed, pos)  # responses
    if tag != 0x30:
        raise ValueError("not a ResponseData: no responses SEQUENCE")
    _, _, one_end = der.read_tlv(signed, s_start)
    if one_end != s_end:
        raise ValueError("a pre-signed answer holds exactly one SingleResponse")
    return signed[s_start:s_end]


def build_response(
    responder: ResponderIdentity,
    produced_at: dt.datetime,
    single_responses: Sequence[SingleResponse | bytes],
    *,
    nonce: Nonce | None = None,
    extended_revoke: bool = False,
) -> bytes:
    """Sign a successful OCSPResponse holding a BasicOCSPResponse.

    `single_responses` are `SingleResponse`s or their pre-encoded DER, in request order.
    """
    tbs = response_data(responder.key_hash, produced_at, single_responses, nonce=nonce,
                        extended_revoke=extended_revoke)
    signed = signed_part(tbs, responder.signer.algorithm_der, responder.signer.sign(tbs))
    return assemble(signed, responder.certs_der)
