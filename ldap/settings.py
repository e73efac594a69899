"""Settings of the LDAP front-end, read once from the config: the `[ldap]` section (the
listener, its limits and the directory layout) and the `ldap_*` keys of each `[[ca]]`."""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Mapping, Sequence

from publisher.config import CaSettings, Table
from publisher.errors import ConfigError, MalformedInput

from . import dn as dnmod
from .operations import DEFAULT_FILTER_DEPTH, DEFAULT_FILTER_ITEMS
from .requests import MAX_FILTER_DEPTH


@dataclass(frozen=True)
class CaLayout:
    """Per-CA keys, in the CA's [[ca]] table."""

    name: str
    dn: str | None = None  # ldap_dn: its pkiCA entry (default cn=<its CN>,<base>)
    crl_dn: str | None = None  # ldap_crl_dn: entry of its full CRL (default cn=<CN> CRL1,<base>)
    arl_dn: str | None = None  # ldap_arl_dn: entry of its ARL (default cn=<CN> ARL,<base>)
    subscribers: bool = True  # ldap_subscribers: publish its subscriber certificates


@dataclass(frozen=True)
class Layout:
    """Where entries go.  suffix/base default to c=<C> and o=<O>,c=<C> of the first CA."""

    suffix: str | None = None
    base: str | None = None
    crl_dns: Mapping[str, str] = field(default_factory=dict)  # [ldap.crl_dns] name -> DN
    cas: tuple[CaLayout, ...] = ()

    def ca(self, name: str) -> CaLayout:
        for c in self.cas:
            if c.name == name:
                return c
        return CaLayout(name)

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
    # Entries examined, bytes written and seconds spent per turn of the event loop, so
    # that one large search does not starve HTTP and the other connections sharing the
    # loop: a slice ends at whichever comes first.
    slice_entries: int = 2000
    slice_bytes: int = 1 << 20
    slice_seconds: float = 0.01
    # Largest search filter evaluated, in items (each AND, OR, NOT, assertion and substring
    # component counts one): every entry examined costs up to this many tests, so it bounds
    # the work between two looks at the clock.  Beyond it: adminLimitExceeded.
    max_filter_items: int = DEFAULT_FILTER_ITEMS
    # Deepest nesting of AND, OR and NOT evaluated; deeper: unwillingToPerform.  Real
    # filters rarely go past 4.
    max_filter_depth: int = DEFAULT_FILTER_DEPTH
    # Bounds of the per-snapshot cache of complete search responses.
    cache_entries: int = 4096
    cache_bytes: int = 64 << 20
    # Seconds between looks at the store's change token (ldap.service); a change is served
    # within this plus the rebuild time.
    poll_interval: float = 0.5
    # Subscriber entries kept in memory (least recently used out); the others are read from
    # the store when a search reaches them.
    entry_cache: int = 10_000
    # Where the entries go in the tree.
    layout: Layout = field(default_factory=Layout)

    @property
    def enabled(self) -> bool:
        return bool(self.listen)

    @property
    def host_port(self) -> tuple[str, int]:
        return parse_host_port(self.listen)

    def listening_on(self, listen: str | None) -> "LdapSettings":
        """These settings with `listen` replaced (the command line's --ldap), validated;
        None keeps the configured address."""
        if listen is None:
            return self
        if listen:
            parse_host_port(listen)
        return dataclasses.replace(self, listen=listen)


def load_ldap_settings(top: Table, cas: Sequence[CaSettings]) -> LdapSettings:
    """Read `[ldap]` and the `ldap_*` keys of each `[[ca]]`; ConfigError names the key."""
    t = top.table("ldap")
    d = LdapSettings()
    listen = t.str("listen", d.listen)
    if listen:
        try:
            parse_host_port(listen)
        except ConfigError as e:
            raise t.error("listen", e.message) from None
    s = LdapSettings(
        listen=listen,
        size_limit=t.int("size_limit", d.size_limit, min=0),
        time_limit=_number(t, "time_limit", d.time_limit),
        max_pdu=t.int("max_pdu", d.max_pdu, min=1),
        idle_timeout=_number(t, "idle_timeout", d.idle_timeout),
        max_connections=t.int("max_connections", d.max_connections, min=1),
        max_pending=t.int("max_pending", d.max_pending, min=1),
        slice_entries=t.int("slice_entries", d.slice_entries, min=1),
        slice_bytes=t.int("slice_bytes", d.slice_bytes, min=1),
        slice_seconds=_positive(t, "slice_seconds", d.slice_seconds),
        max_filter_items=t.int("max_filter_items", d.max_filter_items, min=1),
        max_filter_depth=t.int("max_filter_depth", d.max_filter_depth, min=1, max=MAX_FILTER_DEPTH),
        cache_entries=t.int("cache_entries", d.cache_entries, min=0),
        cache_bytes=t.int("cache_bytes", d.cache_bytes, min=0),
        poll_interval=_number(t, "poll_interval", d.poll_interval),
        entry_cache=t.int("entry_cache", d.entry_cache, min=0),
        layout=_layout(t, top.array("ca"), cas),
    )
    t.check_unknown()
    return s


def _number(t: Table, key: str, default: float) -> float:
    value = t.value(key, default, (int, float), "a number")
    if value < 0:
        raise t.error(key, f"must not be negative, not {value}")
    return float(value)


def _positive(t: Table, key: str, default: float) -> float:
    value = _number(t, key, default)
    if value == 0:
        raise t.error(key, "must be more than 0")
    return value


def _dn(t: Table, key: str) -> str | None:
    value = t.value(key, None, (str,), "a DN string")
    if value is not None:
        try:
            dnmod.parse(value)
        except MalformedInput as e:
            raise t.error(key, e.message) from None
    return value


def _layout(t: Table, ca_tables: Sequence[Table], cas: Sequence[CaSettings]) -> Layout:
    suffix = _dn(t, "suffix")
    base = _dn(t, "base")
    if suffix is not None and base is not None and not _under(base, suffix):
        raise t.error("base", f"{base!r} is not under the suffix {suffix!r}")
    crl_dns_t = t.table("crl_dns")
    crl_dns = {}
    for name, _ in crl_dns_t.items():
        crl_dns[name] = _dn(crl_dns_t, name)
    layouts = []
    for ca, ct in zip(cas, ca_tables):
        layouts.append(CaLayout(ca.name, _dn(ct, "ldap_dn"), _dn(ct, "ldap_crl_dn"), _dn(ct, "ldap_arl_dn"),
                                ct.bool("ldap_subscribers", True)))
    return Layout(suffix=suffix, base=base, crl_dns=crl_dns, cas=tuple(layouts))


def _under(child: str, parent: str) -> bool:
    c, p = dnmod.normalise(child), dnmod.normalise(parent)
    return c == p or c.endswith("," + p)


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
