"""Pure CRL and ARL building: objects and bytes in, DER out. No I/O, no clock.

A CRL of a million entries is built by joining revokedCertificates entries that were
DER-encoded once, at revocation time, and stored; the TBSCertList around them is a handful
of bytes built here. This is what makes a million-entry CRL cost a few seconds instead of
the minutes cryptography's builder takes when fed one entry at a time.
"""
from __future__ import annotations

import datetime as dt
import enum
import functools
import hashlib
from dataclasses import dataclass

from asn1crypto import crl as asn1_crl

from . import der
from .signer import Signer

OID_CRL_NUMBER = "2.5.29.20"
OID_REASON_CODE = "2.5.29.21"
OID_INVALIDITY_DATE = "2.5.29.24"
OID_IDP = "2.5.29.28"
OID_AKI = "2.5.29.35"

# RFC 5280 §5.2.3: CRL numbers are at most 20 octets.
MAX_CRL_NUMBER = 2**159 - 1
# The earliest time a CRL can carry: RFC 5280 §4.1.2.5 writes 1950-2049 as UTCTime and
# allows GeneralizedTime only from 2050 on, so nothing before 1950 can be expressed.
EARLIEST_TIME = dt.datetime(1950, 1, 1, tzinfo=dt.timezone.utc)


class Reason(enum.IntEnum):
    """CRLReason, RFC 5280 §5.3.1 (value 7 is not used)."""

    unspecified = 0
    keyCompromise = 1
    cACompromise = 2
    affiliationChanged = 3
    superseded = 4
    cessationOfOperation = 5
    certificateHold = 6
    removeFromCRL = 8
    privilegeWithdrawn = 9
    aACompromise = 10

    @classmethod
    def parse(cls, text: str) -> "Reason":
        """Accept RFC names case-insensitively, with or without separators, or the number."""
        key = text.strip().replace("-", "").replace("_", "").lower()
        for r in cls:
            if r.name.lower() == key or str(r.value) == key:
                return r
        names = ", ".join(r.name for r in cls if r not in (cls.removeFromCRL,))
        raise ValueError(f"unknown revocation reason {text!r}; one of: {names}")


class ReasonPolicy(enum.Enum):
    """How to write reason `unspecified`: RFC 5280 §5.3.1 says omit the extension; the
    Hongkong Post CPS (Appendix C) writes code 0."""

    OMIT = "omit"
    WRITE = "write"


class ScopeKind(str, enum.Enum):
    FULL = "full"
    PARTITION = "partition"
    ARL = "arl"


def encode_entry(
    serial: int,
    revocation_date: dt.datetime,
    reason: Reason | None,
    invalidity_date: dt.datetime | None = None,
    policy: ReasonPolicy = ReasonPolicy.OMIT,
) -> bytes:
    """One revokedCertificates entry, DER. `reason=None` means no reason was given."""
    if serial < 0:
        raise ValueError("serial numbers are positive")
    exts = []
    if reason is not None and not (reason is Reason.unspecified and policy is ReasonPolicy.OMIT):
        exts.append(_reason_extension(int(reason)))
    if invalidity_date is not None:
        exts.append(der.extension(OID_INVALIDITY_DATE, der.generalized_time(invalidity_date)))
    parts = [der.integer(serial), der.x509_time(revocation_date)]
    if exts:
        parts.append(der.sequence(*exts))
    return der.sequence(*parts)


@functools.lru_cache(maxsize=None)
def _reason_extension(code: int) -> bytes:
    # A handful of distinct values; an import encodes a million entries.
    return der.extension(OID_REASON_CODE, der.enumerated(code))


def idp_extension(
    *, url: str | None = None, only_user: bool = False, only_ca: bool = False
) -> bytes:
    """A critical Issuing Distribution Point (RFC 5280 §5.2.5). Booleans that are FALSE
    are left out, as DER requires for DEFAULT values."""
    if only_user and only_ca:
        raise ValueError("onlyContainsUserCerts and onlyContainsCACerts are exclusive")
    fields = []
    if url is not None:
        uri = der.implicit_primitive(6, url.encode("ascii"))  # GeneralName uniformResourceIdentifier
        full_name = der.implicit_constructed(0, uri)  # DistributionPointName.fullName
        fields.append(der.explicit(0, full_name))  # distributionPoint [0] (a CHOICE: explicit)
    if only_user:
        fields.append(der.implicit_primitive(1, b"\xff"))
    if only_ca:
        fields.append(der.implicit_primitive(2, b"\xff"))
    return der.extension(OID_IDP, der.sequence(*fields), critical=True)


def aki_extension(key_identifier: bytes) -> bytes:
    return der.extension(OID_AKI, der.sequence(der.implicit_primitive(0, key_identifier)))


def crl_number_extension(number: int) -> bytes:
    if not 0 <= number <= MAX_CRL_NUMBER:
        raise ValueError(f"CRL number {number} outside 0..2^159-1")
    return der.extension(OID_CRL_NUMBER, der.integer(number))


@dataclass(frozen=True)
class CrlParams:
    """Everything that goes into one CRL besides its entries."""

    issuer_name_der: bytes  # the issuer's subject Name, DER, exactly as in its certificate
    authority_key_id: bytes
    this_update: dt.datetime
    next_update: dt.datetime
    number: int
    kind: ScopeKind = ScopeKind.FULL
    dp_url: str | None = None  # partition (and optionally ARL) distribution point URL


def scope_extensions(params: CrlParams) -> list[bytes]:
    exts = [aki_extension(params.authority_key_id), crl_number_extension(params.number)]
    if params.kind is ScopeKind.PARTITION:
        if not params.dp_url:
            raise ValueError("a partitioned CRL needs its distribution point URL")
        exts.append(idp_extension(url=params.dp_url, only_user=True))
    elif params.kind is ScopeKind.ARL:
        exts.append(idp_extension(url=params.dp_url, only_ca=True))
    return exts


def build_tbs(algorithm_der: bytes, params: CrlParams, entries: bytes) -> bytes:
    """TBSCertList with pre-encoded, already sorted, concatenated entries."""
    if params.next_update <= params.this_update:
        raise ValueError("nextUpdate must be after thisUpdate")
    parts = [
        der.integer(1),  # v2
        algorithm_der,
        params.issuer_name_der,
        der.x509_time(params.this_update),
        der.x509_time(params.next_update),
    ]
    if entries:  # RFC 5280 §5.1.2.6: an empty list is absent, not an empty SEQUENCE
        parts.append(der.tlv(der.SEQUENCE, entries))
    parts.append(der.explicit(0, der.sequence(*scope_extensions(params))))
    return der.sequence(*parts)


def sign_crl(signer: Signer, params: CrlParams, entries: bytes) -> bytes:
    """Build and sign a CertificateList."""
    tbs = build_tbs(signer.algorithm_der, params, entries)
    signature = signer.sign(tbs)
    return der.sequence(tbs, signer.algorithm_der, der.bit_string(signature))


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def entry_serials_and_dates(entries: bytes) -> list[tuple[int, dt.datetime]]:
    """(serial, revocationDate) of each entry in concatenated revokedCertificates DER."""
    out = []
    pos = 0
    while pos < len(entries):
        _, _, end = der.read_tlv(entries, pos)
        entry = asn1_crl.RevokedCertificate.load(entries[pos:end])
        out.append((entry["user_certificate"].native, entry["revocation_date"].native))
        pos = end
    return out
