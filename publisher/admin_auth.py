"""Who is calling the admin API, and what they may do: pure decisions over what the TLS
layer and the request header give (the client certificate, a bearer token) and the grants
of the config. No I/O.

Mutual TLS is the primary way in: the TLS layer has checked that the caller holds the
certificate's key, and lets any issuer through (`client_cert_tls`); here the certificate
must be issued by one of `admin.client_cas` (name and signature), be within its validity
period and that of its CA, and be meant for client authentication, each refusal a 401
that says which, rather than a bare TLS alert. Its subject is then looked up among
`[[admin.clients]]`. Admin client certificates are issued directly by a configured CA (an
intermediate that issues them is configured itself).
A bearer token is the second way: only its SHA-256 is in the config, compared in constant
time with every configured hash."""
from __future__ import annotations

import datetime as dt
import hashlib
import hmac
from dataclasses import dataclass
from typing import Iterable, Sequence

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.x509.oid import ExtendedKeyUsageOID

from .actor import Actor

#: The roles: what each may change or read.
ROLES = ("publisher", "revoker", "operator", "auditor")


@dataclass(frozen=True)
class Grant:
    """Roles granted to a client certificate subject (RFC 4514, as cryptography writes it)."""

    subject: str
    roles: frozenset[str]


@dataclass(frozen=True)
class TokenGrant:
    name: str
    sha256: bytes
    roles: frozenset[str]


@dataclass(frozen=True)
class Principal:
    """An authenticated caller: who (for the record) and with which roles."""

    actor: Actor
    roles: frozenset[str]

    @property
    def key(self) -> str:
        """The caller as idempotency keys are scoped: kind and name, not the address."""
        return f"{self.actor.kind}:{self.actor.name}"


class Unauthenticated(Exception):
    """No credentials, or credentials we do not accept: 401."""

    def __init__(self, detail: str, who: Actor | None = None) -> None:
        super().__init__(detail)
        self.detail = detail
        self.who = who


class Forbidden(Exception):
    """Authenticated, but without the role the request needs: 403."""

    def __init__(self, detail: str) -> None:
        super().__init__(detail)
        self.detail = detail


def from_certificate(der: bytes, *, client_cas: Sequence[x509.Certificate], grants: Iterable[Grant],
                     now: dt.datetime, source: str | None) -> Principal:
    """The caller behind a client certificate whose key the TLS layer saw proved. Not
    issued by one of `client_cas`, expired or not yet valid (itself or its issuing CA), or
    not for client authentication: Unauthenticated. A subject with no grant is
    authenticated with no roles (every route then answers 403)."""
    try:
        cert = x509.load_der_x509_certificate(der)
    except ValueError:
        raise Unauthenticated("the client certificate does not parse") from None
    subject = cert.subject.rfc4514_string()
    who = Actor("certificate", subject, source)
    issuer = _issuing_ca(cert, client_cas)
    if issuer is None:
        raise Unauthenticated(f"the client certificate's issuer ({cert.issuer.rfc4514_string()}) is not a CA "
                              f"this repository trusts for the admin API (admin.client_cas)", who)
    try:
        usage = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    except x509.ExtensionNotFound:
        usage = None
    except ValueError:
        raise Unauthenticated("the client certificate's extended key usage does not parse", who) from None
    if usage is not None and ExtendedKeyUsageOID.CLIENT_AUTH not in usage \
            and ExtendedKeyUsageOID.ANY_EXTENDED_KEY_USAGE not in usage:
        raise Unauthenticated("the client certificate is not for client authentication (its extended key "
                              "usage lacks clientAuth)", who)
    for what, c in (("the client certificate", cert), (f"its issuing CA ({issuer.subject.rfc4514_string()})", issuer)):
        if now < c.not_valid_before_utc:
            raise Unauthenticated(f"{what} is not valid before {_z(c.not_valid_before_utc)}", who)
        if now >= c.not_valid_after_utc:
            raise Unauthenticated(f"{what} expired at {_z(c.not_valid_after_utc)}", who)
    roles: frozenset[str] = frozenset()
    for g in grants:
        if g.subject == subject:
            roles |= g.roles
    return Principal(who, roles)


def _issuing_ca(cert: x509.Certificate, client_cas: Sequence[x509.Certificate]) -> x509.Certificate | None:
    """The CA among `client_cas` that signed `cert` (a name alone proves nothing)."""
    for ca in client_cas:
        if ca.subject != cert.issuer:
            continue
        try:
            cert.verify_directly_issued_by(ca)
        except (ValueError, TypeError, InvalidSignature):
            continue
        return ca
    return None


def bearer_token(authorization: str | None) -> str | None:
    """The token of an `Authorization: Bearer <token>` header; None without one.
    Unauthenticated for another scheme or an empty token."""
    if authorization is None:
        return None
    scheme, _, token = authorization.strip().partition(" ")
    if scheme.lower() != "bearer":
        raise Unauthenticated("only client certificates and `Authorization: Bearer` tokens are accepted")
    token = token.strip()
    if not token:
        raise Unauthenticated("the bearer token is empty")
    return token


def from_token(token: str, tokens: Iterable[TokenGrant], *, source: str | None) -> Principal:
    """The caller a bearer token names. Every configured hash is compared, in constant
    time, whether or not one matched already: the time taken tells nothing."""
    digest = hashlib.sha256(token.encode("utf-8", "surrogateescape")).digest()
    found: TokenGrant | None = None
    for grant in tokens:
        if hmac.compare_digest(digest, grant.sha256) and found is None:
            found = grant
    if found is None:
        raise Unauthenticated("the bearer token is not one this repository accepts")
    return Principal(Actor("token", found.name, source), found.roles)


def require(principal: Principal, roles: Iterable[str], what: str) -> None:
    """Forbidden unless the caller holds one of `roles`."""
    needed = tuple(roles)
    if not principal.roles & set(needed):
        has = ", ".join(sorted(principal.roles)) or "none"
        raise Forbidden(f"{what} needs the role {' or '.join(needed)}; {principal.actor.kind} "
                        f"{principal.actor.name!r} has {has}")


def _z(when: dt.datetime) -> str:
    return when.astimezone(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
