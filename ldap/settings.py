"""Settings of the LDAP listener, read once from the `[ldap]` section of the config."""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, Mapping

from publisher.errors import ConfigError


@dataclass(frozen=True)
class LdapSettings:
    # "host:port" to listen on; 389 needs privileges.  An empty string disables LDAP.
    listen: str = "127.0.0.1:1389"
    # Most entries one search returns (sizeLimitExceeded beyond); 0 = no server limit.
    # A client's smaller sizeLimit wins.
    size_limit: int = 1000
    # Seconds one search may take (timeLimitExceeded beyond); 0 = none.  A client's smaller
    # timeLimit wins.
    time_limit: float = 10.0
    # Largest LDAPMessage accepted from a client, in bytes.  Requests are small; anything
    # bigger is refused with a Notice of Disconnection (protocolError) before it is buffered.
    max_pdu: int = 256 * 1024
    # Seconds of silence after which a connection is closed; also closes clients that stop
    # reading their results.
    idle_timeout: float = 120.0
    # Concurrent connections; more are told `unavailable` and closed.
    max_connections: int = 512
    # Requests queued on one connection before the server stops reading from it.
    max_pending: int = 64
    # Entries examined and bytes written per turn of the event loop, so that one large
    # search does not starve HTTP and the other connections sharing the loop.
    slice_entries: int = 2000
    slice_bytes: int = 1 << 20
    # Bounds of the per-snapshot cache of complete search responses.
    cache_entries: int = 4096
    cache_bytes: int = 64 << 20
    # Seconds between looks at the store's change token (ldap.service); a change is served
    # within this plus the rebuild time.
    poll_interval: float = 0.5

    @property
    def enabled(self) -> bool:
        return bool(self.listen)

    @property
    def host_port(self) -> tuple[str, int]:
        return parse_host_port(self.listen)

    @classmethod
    def from_config(cls, section: Any) -> "LdapSettings":
        """From a mapping (a TOML table), an object with attributes, or None (defaults).
        Keys it does not own (the layout, read by ldap.build) are ignored here."""
        if section is None:
            return cls()
        if isinstance(section, cls):
            return section
        fields = {f.name: f for f in dataclasses.fields(cls)}
        values: dict[str, Any] = {}
        if isinstance(section, Mapping):
            for k, v in section.items():
                if k not in fields:
                    continue
                values[k] = v
        else:
            for k in fields:
                if hasattr(section, k):
                    values[k] = getattr(section, k)
        out = {}
        for k, v in values.items():
            default = getattr(cls, k)
            try:
                out[k] = type(default)(v) if not isinstance(default, str) else str(v)
            except (TypeError, ValueError) as e:
                raise ConfigError(f"[ldap] {k}: bad value {v!r}") from e
        s = cls(**out)
        if s.enabled:
            parse_host_port(s.listen)
        for k in ("max_pdu", "max_connections", "max_pending", "slice_entries", "slice_bytes"):
            if getattr(s, k) <= 0:
                raise ConfigError(f"[ldap] {k} must be positive")
        return s


def parse_host_port(text: str) -> tuple[str, int]:
    """"127.0.0.1:1389", "[::1]:389", ":1389" (all interfaces) -> (host, port)."""
    host, sep, port = text.rpartition(":")
    if not sep:
        raise ConfigError(f"listen address {text!r} is not HOST:PORT")
    host = host.strip("[]")
    try:
        p = int(port)
    except ValueError as e:
        raise ConfigError(f"listen address {text!r}: bad port") from e
    if not 0 <= p <= 65535:
        raise ConfigError(f"listen address {text!r}: bad port")
    return host, p
