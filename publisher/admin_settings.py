"""The `[admin]` section: the admin API's own listener (never the public port), its TLS
certificate, the CAs whose client certificates it accepts, the bearer tokens (only their
SHA-256 in the config), the roles granted to each certificate subject and token, and the
caps on what one request may carry. Read from the shared `Table` tree like every part's
section; absent or `enabled = false`, nothing listens."""
from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass, field
from pathlib import Path

from cryptography import x509

from .admin_auth import ROLES, Grant, TokenGrant
from .certs import split_certificates
from .config import Table, parse_listen
from .errors import ConfigError, MalformedInput

DEFAULT_LISTEN = "127.0.0.1:8443"
_HEX64 = re.compile(r"[0-9a-fA-F]{64}")


@dataclass(frozen=True)
class AdminSettings:
    enabled: bool = False
    listen: tuple[str, int] = ("127.0.0.1", 8443)
    certificate: Path | None = None  # the listener's TLS certificate (PEM, chain after it)
    key: Path | None = None  # its private key (PEM)
    client_cas: tuple[Path, ...] = ()  # PEM files: CAs whose client certificates authenticate
    clients: tuple[Grant, ...] = ()  # roles per client certificate subject
    tokens: tuple[TokenGrant, ...] = ()  # roles per bearer token
    max_body: int = 1024 * 1024  # bytes of one request body; 413 beyond
    max_batch: int = 100  # certificates in one request; 400 beyond
    idempotency: dt.timedelta = dt.timedelta(hours=24)  # how long an Idempotency-Key is remembered
    source: Path | None = None
    client_ca_certs: tuple[x509.Certificate, ...] = field(default=(), compare=False)

    def listening_on(self, override: str | None) -> "AdminSettings":
        """The settings with the listen address a command line gave, if any."""
        if not override:
            return self
        import dataclasses

        return dataclasses.replace(self, listen=parse_listen(override))


def load_admin_settings(top: Table, *, http_listen: tuple[str, int]) -> AdminSettings:
    """The `[admin]` section. A listener on the public HTTP port, a missing certificate,
    key or client CA file, a token hash that is not 64 hex digits, or an unknown role is
    refused, naming the key."""
    if "admin" not in top.data:
        return AdminSettings()
    t = top.table("admin")
    enabled = t.bool("enabled", True)
    listen = t.listen("listen", DEFAULT_LISTEN)
    if listen[1] == http_listen[1] and listen[1] != 0:
        raise t.error("listen", f"port {listen[1]} is the public HTTP port: the admin API needs a listener of its own")
    certificate = t.path("certificate")
    key = t.path("key")
    client_cas = t.list_path("client_cas")
    clients = []
    for c in t.array("clients"):
        subject = c.str("subject")
        if not subject or not subject.strip():
            raise c.error("subject", "the client certificate's subject (RFC 4514, e.g. \"CN=CA feed,O=Example\") is required")
        try:
            canonical = x509.Name.from_rfc4514_string(subject).rfc4514_string()
        except ValueError as e:
            raise c.error("subject", f"{subject!r} is not an RFC 4514 name: {e}") from None
        clients.append(Grant(canonical, _roles(c)))
        c.check_unknown()
    tokens = []
    for tok in t.array("tokens"):
        name = tok.str("name")
        if not name or not name.strip() or not name.isprintable() or len(name) > 100:
            raise tok.error("name", "a token's name (1 to 100 printable characters) is required")
        digest = tok.str("sha256")
        if digest is None or not _HEX64.fullmatch(digest):
            raise tok.error("sha256", "the token's SHA-256, 64 hexadecimal digits, is required (never the token itself)")
        tokens.append(TokenGrant(name, bytes.fromhex(digest), _roles(tok)))
        tok.check_unknown()
    if len({g.name for g in tokens}) != len(tokens):
        raise t.error("tokens", "two tokens have the same name")
    s = AdminSettings(
        enabled=enabled, listen=listen, certificate=certificate, key=key, client_cas=client_cas,
        clients=tuple(clients), tokens=tuple(tokens),
        max_body=t.int("max_body", 1024 * 1024, min=1024, max=64 * 1024 * 1024),
        max_batch=t.int("max_batch", 100, min=1, max=10_000),
        idempotency=dt.timedelta(hours=t.int("idempotency_hours", 24, min=1, max=24 * 30)),
        source=t.source,
    )
    t.check_unknown()
    if not enabled:
        return s
    if certificate is None or key is None:
        raise t.error("certificate" if certificate is None else "key",
                      "the listener's TLS certificate and key are required when the admin API is enabled")
    ca_certs = []
    for i, path in enumerate(client_cas):
        try:
            ca_certs += split_certificates(path.read_bytes(), str(path))
        except OSError as e:
            raise t.error(f"client_cas[{i}]", f"cannot read {path}: {e.strerror}") from None
        except MalformedInput as e:
            raise t.error(f"client_cas[{i}]", e.message) from None
    if not ca_certs and not tokens:
        raise t.error("client_cas", "no client CA and no token: nobody could use the admin API")
    import dataclasses

    return dataclasses.replace(s, client_ca_certs=tuple(ca_certs))


def _roles(t: Table) -> frozenset[str]:
    roles = t.list_str("roles")
    if not roles:
        raise t.error("roles", f"at least one role is required ({', '.join(ROLES)})")
    unknown = sorted(set(roles) - set(ROLES))
    if unknown:
        raise t.error("roles", f"unknown role(s) {', '.join(unknown)}: the roles are {', '.join(ROLES)}")
    return frozenset(roles)


def check_key_file(path: Path, what: str) -> None:
    """A private key readable by group or others is refused, as the CA keys are."""
    try:
        mode = path.stat().st_mode
    except OSError as e:
        raise ConfigError(f"{what}: cannot read {path}: {e.strerror}") from None
    if mode & 0o077:
        raise ConfigError(f"{what}: {path} is readable by group or others (chmod 600 it)")
