"""Domain errors, each carrying the wire code of every edge that reports it.

One class per concern (malformed input, not found, not allowed, temporarily unavailable,
and everything else); each edge (HTTP, OCSP, LDAP, CLI) maps them in exactly one place.
"""
from __future__ import annotations


class RepoError(Exception):
    """Base of all pkirepo domain errors. Unexpected: internal error, no detail leaked."""

    http_status = 500
    ocsp_status = 2  # internalError
    ldap_result = 80  # other
    cli_exit = 1

    def __init__(self, message: str, **detail: object) -> None:
        super().__init__(message)
        self.message = message
        self.detail = detail


class MalformedInput(RepoError):
    """The caller sent something that does not parse or is out of range."""

    http_status = 400
    ocsp_status = 1  # malformedRequest
    ldap_result = 2  # protocolError
    cli_exit = 2


class NotFound(RepoError):
    """An issuer, certificate, CRL or path that we do not have."""

    http_status = 404
    ocsp_status = 6  # unauthorized: RFC 6960 says so for issuers we do not serve
    ldap_result = 32  # noSuchObject
    cli_exit = 2


class Conflict(RepoError):
    """The request contradicts the state: duplicate certificate, double revocation,
    release of a revoked certificate, a CRL number that does not increase."""

    http_status = 409
    ocsp_status = 1
    ldap_result = 53  # unwillingToPerform
    cli_exit = 2


class NotAllowed(RepoError):
    """Read-only or forbidden operation."""

    http_status = 403
    ocsp_status = 6
    ldap_result = 50  # insufficientAccessRights
    cli_exit = 2


class Unavailable(RepoError):
    """Temporarily unable to answer (store busy, responder not ready)."""

    http_status = 503
    ocsp_status = 3  # tryLater
    ldap_result = 52  # unavailable
    cli_exit = 1


class StoreProblem(RepoError):
    """The store cannot be served from as it is: missing, corrupt, or behind what was
    already published. The message says what was found and how to recover; nothing starts."""

    http_status = 503
    ocsp_status = 3  # tryLater
    ldap_result = 52  # unavailable
    cli_exit = 2


class StoreMissing(StoreProblem):
    """No store at the configured path (or an empty file): a store is only ever created by
    an explicit command, never as a side effect of a mistyped path."""


class StoreCorrupt(StoreProblem):
    """The store file is not a readable pkirepo store."""


class StoreBehind(StoreProblem):
    """The store holds less than was already published (an older backup, a lost store):
    publishing from it would make CRL numbers or revocations go backwards."""


class ConfigError(RepoError):
    """A configuration file, key or value is wrong; the message names it."""

    cli_exit = 2


class VerificationError(MalformedInput):
    """A signature or certificate chain does not verify."""


class StoreUnreachable(StoreProblem, Unavailable):
    """The configured server database cannot be reached or refuses the schema: at start-up
    the operator's to fix (the CLI exits 2, naming the setting); at run time, like any
    Unavailable, 503 / tryLater / unavailable."""


class StoreIncomplete(StoreProblem):
    """A `pkirepo store copy` into this store did not finish: it holds part of a repository."""
