"""Decoding OCSP requests (RFC 6960 §4.1) into frozen dataclasses.

Pure: bytes in, dataclasses out, no I/O and no clock. Every failure raises a subclass of
`ocsp.errors.MalformedRequest` naming what is wrong; nothing else escapes the decoder (a
hypothesis test throws random and mutated requests at it to hold us to that).

The outer SEQUENCE is checked by hand first, so that an empty body, garbage, a truncated
request and trailing bytes each get their own error; asn1crypto then decodes the inside.
"""
from __future__ import annotations

import base64
import binascii
import enum
import re
import urllib.parse
from dataclasses import dataclass

from asn1crypto import core as asn1_core
from asn1crypto import ocsp as asn1_ocsp

from .errors import (
    BadBase64,
    BadHashLength,
    DuplicateExtension,
    EmptyNonce,
    EmptyRequest,
    MalformedRequest,
    NoRequests,
    NonceTooLong,
    NotDER,
    TooManyRequests,
    TrailingData,
    TruncatedRequest,
    UnsupportedCriticalExtension,
    UnsupportedHashAlgorithm,
    UnsupportedVersion,
)

#: RFC 9654 caps the nonce at 128 octets; responders must accept 1 to 32.
NONCE_MAX_ALLOWED = 128
NONCE_MAX_DEFAULT = 32

OID_NONCE = "1.3.6.1.5.5.7.48.1.2"
# Request extensions we understand well enough to accept even when marked critical.
_KNOWN_REQUEST_EXTENSIONS = frozenset(
    {
        OID_NONCE,
        "1.3.6.1.5.5.7.48.1.4",  # id-pkix-ocsp-response: acceptable responses (we send basic)
        "1.3.6.1.5.5.7.48.1.8",  # id-pkix-ocsp-pref-sig-algs: a preference, may be ignored
    }
)
_KNOWN_SINGLE_EXTENSIONS = frozenset({"1.3.6.1.5.5.7.48.1.7"})  # service locator: we are the authority

# asn1crypto reports malformed inner structure with these; anything else would be a bug of ours
# and is left to escape (the HTTP edge turns it into internalError and logs it).
_ASN1_ERRORS = (ValueError, TypeError, KeyError, IndexError, OverflowError, UnicodeDecodeError)


# asn1crypto's own OCSPRequest classes parse a nonce extnValue as an OCTET STRING as soon as
# the extension is read, which refuses the bare form some clients send. These variants keep
# every extnValue as opaque bytes; the rest reuses asn1crypto's classes.
class _Extension(asn1_core.Sequence):
    _fields = [
        ("extn_id", asn1_core.ObjectIdentifier),
        ("critical", asn1_core.Boolean, {"default": False}),
        ("extn_value", asn1_core.OctetString),
    ]


class _Extensions(asn1_core.SequenceOf):
    _child_spec = _Extension


class _Request(asn1_core.Sequence):
    _fields = [
        ("req_cert", asn1_ocsp.CertId),
        ("single_request_extensions", _Extensions, {"explicit": 0, "optional": True}),
    ]


class _Requests(asn1_core.SequenceOf):
    _child_spec = _Request


class _TBSRequest(asn1_core.Sequence):
    _fields = [
        ("version", asn1_ocsp.Version, {"explicit": 0, "default": "v1"}),
        ("requestor_name", asn1_ocsp.GeneralName, {"explicit": 1, "optional": True}),
        ("request_list", _Requests),
        ("request_extensions", _Extensions, {"explicit": 2, "optional": True}),
    ]


class _OCSPRequest(asn1_core.Sequence):
    _fields = [
        ("tbs_request", _TBSRequest),
        ("optional_signature", asn1_ocsp.Signature, {"explicit": 0, "optional": True}),
    ]


class HashAlgorithm(enum.Enum):
    """Hash algorithms a CertID may use; the value is (OID, hashlib name, digest size)."""

    SHA1 = ("1.3.14.3.2.26", "sha1", 20)
    SHA256 = ("2.16.840.1.101.3.4.2.1", "sha256", 32)
    SHA384 = ("2.16.840.1.101.3.4.2.2", "sha384", 48)
    SHA512 = ("2.16.840.1.101.3.4.2.3", "sha512", 64)

    @property
    def oid(self) -> str:
        return self.value[0]

    @property
    def hashlib_name(self) -> str:
        return self.value[1]

    @property
    def digest_size(self) -> int:
        return self.value[2]

    @classmethod
    def from_oid(cls, dotted: str) -> HashAlgorithm:
        for alg in cls:
            if alg.oid == dotted:
                return alg
        raise UnsupportedHashAlgorithm(f"unsupported CertID hash algorithm {dotted}", oid=dotted)


@dataclass(frozen=True)
class RequestLimits:
    """What the decoder accepts; from the `[ocsp]` settings."""

    #: Single requests per OCSPRequest; more is answered `malformedRequest`.
    max_requests: int = 16
    #: Longest nonce accepted, in octets (RFC 9654: 32 by default, configurable up to 128).
    max_nonce_length: int = NONCE_MAX_DEFAULT

    def __post_init__(self) -> None:
        if self.max_requests < 1:
            raise ValueError(f"max_requests must be at least 1, not {self.max_requests}")
        if not 1 <= self.max_nonce_length <= NONCE_MAX_ALLOWED:
            raise ValueError(
                f"max_nonce_length must be between 1 and {NONCE_MAX_ALLOWED}, not {self.max_nonce_length}"
            )


DEFAULT_LIMITS = RequestLimits()


@dataclass(frozen=True)
class CertID:
    """One certificate asked about."""

    hash_algorithm: HashAlgorithm
    issuer_name_hash: bytes
    issuer_key_hash: bytes
    serial: int
    #: The CertID exactly as received; the answer echoes it so that every client's
    #: comparison (some compare bytes, some OIDs and hashes) matches.
    der: bytes


@dataclass(frozen=True)
class Nonce:
    """An RFC 9654 nonce."""

    #: The nonce octets themselves.
    value: bytes
    #: The extension's extnValue content exactly as received. RFC 6960 §4.4.1 wraps the nonce
    #: in an OCTET STRING inside the extnValue OCTET STRING (what OpenSSL, cryptography and
    #: Go send); some older clients send the bare octets. Echoing these bytes unchanged
    #: satisfies both kinds, since clients compare the extnValue they sent.
    extn_value: bytes


@dataclass(frozen=True)
class RequestSignature:
    """The optionalSignature of a signed request, kept for a verifier to check."""

    algorithm_oid: str
    signature: bytes
    certificates: tuple[bytes, ...]


@dataclass(frozen=True)
class OCSPRequest:
    cert_ids: tuple[CertID, ...]
    nonce: Nonce | None
    signature: RequestSignature | None
    #: The TBSRequest DER, over which a request signature is computed.
    tbs_der: bytes

    @property
    def signed(self) -> bool:
        return self.signature is not None


def _outer_sequence(data: bytes) -> None:
    """Check the outer TLV: one complete DER SEQUENCE and nothing after it."""
    if not data:
        raise EmptyRequest("empty request")
    if data[0] != 0x30:
        raise NotDER(f"not a DER SEQUENCE (first octet 0x{data[0]:02x})")
    if len(data) < 2:
        raise TruncatedRequest("truncated request: no length octet")
    first = data[1]
    pos = 2
    if first < 0x80:
        size = first
    elif first == 0x80:
        raise NotDER("indefinite length: BER, not DER")
    else:
        count = first & 0x7F
        if count > 4:
            raise NotDER(f"length of {count} octets")
        if pos + count > len(data):
            raise TruncatedRequest("truncated request: incomplete length")
        size = int.from_bytes(data[pos : pos + count], "big")
        pos += count
    end = pos + size
    if end > len(data):
        raise TruncatedRequest(
            f"truncated request: {size} octets announced, {len(data) - pos} received",
            announced=size,
            received=len(data) - pos,
        )
    if end < len(data):
        raise TrailingData(f"{len(data) - end} octets after the request", trailing=len(data) - end)


def _extensions(exts, known: frozenset[str]) -> dict[str, tuple[bool, bytes]]:
    """Map extension OID to (critical, extnValue content), rejecting duplicates and
    critical extensions that we do not understand."""
    out: dict[str, tuple[bool, bytes]] = {}
    for ext in exts:
        oid = ext["extn_id"].dotted
        critical = bool(ext["critical"].native)
        if oid in out:
            raise DuplicateExtension(f"extension {oid} appears twice", oid=oid)
        if critical and oid not in known:
            raise UnsupportedCriticalExtension(f"unsupported critical extension {oid}", oid=oid)
        out[oid] = (critical, ext["extn_value"].native)
    return out


def _nonce(extn_value: bytes, limits: RequestLimits) -> Nonce:
    value = extn_value
    # The RFC 6960 §4.4.1 form: extnValue holds a complete DER OCTET STRING.
    if len(extn_value) >= 2 and extn_value[0] == 0x04:
        first = extn_value[1]
        if first < 0x80 and 2 + first == len(extn_value):
            value = extn_value[2:]
        elif first == 0x81 and len(extn_value) >= 3 and 3 + extn_value[2] == len(extn_value):
            value = extn_value[3:]
    if not value:
        raise EmptyNonce("empty nonce")
    if len(value) > limits.max_nonce_length:
        raise NonceTooLong(
            f"nonce of {len(value)} octets, at most {limits.max_nonce_length} accepted",
            length=len(value),
            limit=limits.max_nonce_length,
        )
    return Nonce(value=value, extn_value=extn_value)


def _cert_id(req) -> CertID:
    cid = req["req_cert"]
    alg = cid["hash_algorithm"]
    hash_alg = HashAlgorithm.from_oid(alg["algorithm"].dotted)
    params = alg["parameters"]
    # Absent or NULL are both seen in the wild (OpenSSL sends NULL); anything else is not a hash.
    if params.contents not in (None, b""):
        raise MalformedRequest("hash algorithm parameters must be absent or NULL")
    name_hash = cid["issuer_name_hash"].native
    key_hash = cid["issuer_key_hash"].native
    for what, value in (("issuerNameHash", name_hash), ("issuerKeyHash", key_hash)):
        if len(value) != hash_alg.digest_size:
            raise BadHashLength(
                f"{what} of {len(value)} octets for {hash_alg.name} ({hash_alg.digest_size} expected)"
            )
    serial = cid["serial_number"].native
    if not isinstance(req["single_request_extensions"], asn1_core.Void):
        _extensions(req["single_request_extensions"], _KNOWN_SINGLE_EXTENSIONS)
    return CertID(hash_alg, name_hash, key_hash, serial, cid.dump())


def decode_request(data: bytes, limits: RequestLimits = DEFAULT_LIMITS) -> OCSPRequest:
    """Decode a DER OCSPRequest; raise a `MalformedRequest` subclass on any problem."""
    _outer_sequence(data)
    try:
        return _decode(data, limits)
    except MalformedRequest:
        raise
    except _ASN1_ERRORS as e:
        raise NotDER(f"not an OCSPRequest: {e}") from e


def _decode(data: bytes, limits: RequestLimits) -> OCSPRequest:
    req = _OCSPRequest.load(data, strict=True)
    tbs = req["tbs_request"]
    version = tbs["version"].native
    if version != "v1":
        raise UnsupportedVersion(f"request version {version}, only v1 is defined")
    # Walk requestorName so that a malformed one is noticed; we do not use it.
    tbs["requestor_name"].native  # noqa: B018
    request_list = tbs["request_list"]
    count = len(request_list)
    if count == 0:
        raise NoRequests("the request list is empty")
    if count > limits.max_requests:
        raise TooManyRequests(
            f"{count} single requests, at most {limits.max_requests} accepted",
            count=count,
            limit=limits.max_requests,
        )
    cert_ids = tuple(_cert_id(single) for single in request_list)

    nonce = None
    if not isinstance(tbs["request_extensions"], asn1_core.Void):
        exts = _extensions(tbs["request_extensions"], _KNOWN_REQUEST_EXTENSIONS)
        if OID_NONCE in exts:
            nonce = _nonce(exts[OID_NONCE][1], limits)

    signature = None
    sig = req["optional_signature"]
    if not isinstance(sig, asn1_core.Void):
        certs = sig["certs"]
        signature = RequestSignature(
            algorithm_oid=sig["signature_algorithm"]["algorithm"].dotted,
            signature=sig["signature"].native,
            certificates=() if isinstance(certs, asn1_core.Void) else tuple(c.dump() for c in certs),
        )
    return OCSPRequest(cert_ids=cert_ids, nonce=nonce, signature=signature, tbs_der=tbs.dump())


_B64_CHARS = re.compile(rb"\A[A-Za-z0-9+/]*={0,2}\Z")


def decode_get_path(path: str) -> bytes:
    """Turn the part of a GET URL after `/ocsp/` into the DER request bytes.

    RFC 6960 appendix A.1 and RFC 5019 §5: the request is standard base64 (it may contain
    `/` and `+`) and then URL-encoded, but many clients skip the URL encoding, and some
    proxies turn `+` into a space. Leading slashes (a doubled `/ocsp//...`) are dropped: a
    DER SEQUENCE's base64 always starts with `M`, never with `/`.
    """
    try:
        raw = path.encode("ascii")
    except UnicodeEncodeError as e:
        raise BadBase64("GET path is not base64: non-ASCII characters") from e
    if b"%" in raw:
        raw = urllib.parse.unquote_to_bytes(raw)
    raw = raw.lstrip(b"/").replace(b" ", b"+").rstrip(b"\r\n")
    # Tolerate the URL-safe alphabet, and missing padding, both of which some clients use.
    if b"-" in raw or b"_" in raw:
        raw = raw.replace(b"-", b"+").replace(b"_", b"/")
    if not raw:
        raise BadBase64("GET path is empty")
    if not _B64_CHARS.match(raw):
        raise BadBase64("GET path is not base64")
    raw = raw.rstrip(b"=")
    if len(raw) % 4 == 1:
        raise BadBase64("GET path is not base64: impossible length")
    raw += b"=" * (-len(raw) % 4)
    try:
        return base64.b64decode(raw, validate=True)
    except (binascii.Error, ValueError) as e:
        raise BadBase64(f"GET path is not base64: {e}") from e
