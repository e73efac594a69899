"""OCSP-only errors, grouped under the repository's domain errors.

Each class carries its wire codes through its base (see publisher/errors.py): every
malformed request answers `malformedRequest`, an issuer we do not serve `unauthorized`,
a responder that cannot answer yet `tryLater`. The subclasses exist so that tests and
logs can tell the failures apart; the OCSP edge maps them once, by `ocsp_status`.
"""
from __future__ import annotations

from publisher.errors import MalformedInput, NotAllowed, NotFound, RepoError, Unavailable


class MalformedRequest(MalformedInput):
    """The request does not decode, or is outside what we accept."""


class EmptyRequest(MalformedRequest):
    """Zero bytes where a DER OCSPRequest was expected."""


class NotDER(MalformedRequest):
    """The bytes do not start like a DER SEQUENCE, or their inner structure is not an OCSPRequest."""


class TruncatedRequest(MalformedRequest):
    """The outer DER length announces more bytes than were received."""


class TrailingData(MalformedRequest):
    """Bytes follow the end of the outer DER SEQUENCE."""


class UnsupportedVersion(MalformedRequest):
    """TBSRequest.version is not v1."""


class NoRequests(MalformedRequest):
    """The requestList is empty: there is nothing to answer."""


class TooManyRequests(MalformedRequest):
    """More single requests than the configured limit."""


class UnsupportedHashAlgorithm(MalformedRequest):
    """A CertID uses a hash algorithm we do not compute issuer hashes with."""


class BadHashLength(MalformedRequest):
    """A CertID's issuerNameHash or issuerKeyHash does not have the length of its hash."""


class EmptyNonce(MalformedRequest):
    """A nonce extension with zero octets (RFC 9654 requires at least one)."""


class NonceTooLong(MalformedRequest):
    """A nonce longer than the configured maximum (RFC 9654: 32 by default, at most 128)."""


class DuplicateExtension(MalformedRequest):
    """The same extension appears twice in one Extensions list."""


class UnsupportedCriticalExtension(MalformedRequest):
    """A critical extension we do not understand; RFC 5280 semantics require rejecting it."""


class BadBase64(MalformedRequest):
    """A GET path that is not (possibly percent-encoded) standard base64."""


class UnknownIssuer(NotFound):
    """No CA we serve matches the CertID's issuer hashes (answered `unauthorized`)."""


class SigRequired(NotAllowed):
    """Signed requests are required by configuration and this one is not signed."""

    ocsp_status = 5  # sigRequired


class BadRequestSignature(NotAllowed):
    """A signed request whose signature does not verify (answered `unauthorized`)."""


class ResponderNotReady(Unavailable):
    """No valid responder certificate or no pre-signed data yet (answered `tryLater`)."""


class InternalResponderError(RepoError):
    """A failure of ours while answering (answered `internalError`, details only logged)."""
