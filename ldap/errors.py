"""The errors LDAP operations end with, and the one table that turns an exception into an
LDAPResult (RFC 4511 4.1.9).

Every error carries its resultCode as `ldap_result`, like all pkirepo domain errors
(`publisher.errors`), and noSuchObject also the matchedDN.  `result_of` reads them back; the
protocol builds the reply from it in one place.  `ProtocolViolation` (and `ber.FrameError`,
one of them) ends the session with a Notice of Disconnection rather than one operation.

Pure: no Twisted, no I/O.
"""
from __future__ import annotations

from publisher.errors import MalformedInput, NotAllowed, NotFound, RepoError

from .codes import ResultCode


class LdapError(RepoError):
    """An outcome only LDAP has a code for; the subclass names it."""


class ProtocolError(MalformedInput):
    """A request that decodes but asks for something the protocol does not define (LDAPv2,
    an unknown scope, an unknown extended operation): protocolError, the session goes on."""


class ProtocolViolation(MalformedInput):
    """A PDU that cannot be a request (it does not decode, exceeds the size cap, reuses the
    reserved messageID 0): RFC 4511 4.1.1 ends the session with a Notice of Disconnection
    carrying protocolError."""


class UnsupportedCriticalControl(LdapError):
    """RFC 4511 4.1.11: a critical control the server does not implement fails the operation."""

    ldap_result = ResultCode.UNAVAILABLE_CRITICAL_EXTENSION


class AuthMethodNotSupported(LdapError):
    ldap_result = ResultCode.AUTH_METHOD_NOT_SUPPORTED


class NoSuchAttribute(LdapError):
    ldap_result = ResultCode.NO_SUCH_ATTRIBUTE


class FilterTooLarge(LdapError):
    """A search filter with more items than the server evaluates (`max_filter_items`): an
    administrative limit on the work one search may cost, refused before any entry is
    examined."""

    ldap_result = ResultCode.ADMIN_LIMIT_EXCEEDED


class FilterTooDeep(LdapError):
    """A search filter nested deeper than the server evaluates (`max_filter_depth`)."""

    ldap_result = ResultCode.UNWILLING_TO_PERFORM


class InvalidCredentials(NotAllowed):
    ldap_result = ResultCode.INVALID_CREDENTIALS


class ReadOnly(NotAllowed):
    """Any write: the directory is published from the store, never changed over LDAP."""

    def __init__(self, message: str = "the directory is read-only") -> None:
        super().__init__(message)


class NoSuchObject(NotFound):
    """The base or target entry does not exist; `matched_dn` is its closest existing
    ancestor as published ("" when there is none), sent back as matchedDN."""

    def __init__(self, matched_dn: str, message: str = "") -> None:
        super().__init__(message)
        self.matched_dn = matched_dn


def result_of(e: BaseException) -> tuple[int, str, str]:
    """(resultCode, matchedDN, diagnosticMessage) for an exception.

    Anything that is not a domain error, and a domain error without a more specific code,
    is other (80) with no detail: the message could hold internals.
    """
    if isinstance(e, RepoError) and e.ldap_result != ResultCode.OTHER:
        return int(e.ldap_result), getattr(e, "matched_dn", ""), e.message
    return int(ResultCode.OTHER), "", "internal error"


def ends_session(e: BaseException) -> bool:
    """True for errors answered with a Notice of Disconnection instead of an operation's
    result: protocol violations, and failures we did not foresee (the session's state can
    no longer be trusted)."""
    return isinstance(e, ProtocolViolation) or not isinstance(e, RepoError)
