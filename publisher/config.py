"""Settings: one TOML file, loaded once, validated, passed down as frozen dataclasses.

Every error names the file and the key at fault. Relative paths are taken relative to the
config file's directory, so a config can travel with its data.

This module reads the repository's own sections (`[store]`, `[http]`, `[publication]`,
`[crl]` and the core keys of each `[[ca]]`). The front-ends read theirs (`[ocsp]`, `[ldap]`,
their keys in `[[ca]]`) from the same `Table` tree; the composition root then reports every
key that nobody read, so a typo anywhere is refused whoever owns the section.
"""
from __future__ import annotations

import datetime as dt
import re
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .crl import ReasonPolicy
from .db_settings import DatabaseSettings, database_settings
from .documents import DEFAULT_KINDS, KIND_RE
from .errors import ConfigError

NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$")


class Table:
    """Typed access to one TOML table; remembers which keys were read so that unknown
    keys (usually typos) are reported instead of silently ignored."""

    def __init__(self, data: dict[str, Any], where: str, source: Path, base: Path) -> None:
        if not isinstance(data, dict):
            raise ConfigError(f"{source}: [{where}] must be a table")
        self.data, self.where, self.source, self.base = data, where, source, base
        self._seen: set[str] = set()
        self._children: dict[str, Table | list[Table]] = {}

    def _err(self, key: str, why: str) -> ConfigError:
        return ConfigError(f"{self.source}: {self.where}.{key}: {why}")

    def value(self, key: str, default: Any, types: tuple[type, ...], what: str) -> Any:
        """The value of `key` if it is one of `types` (`what` names them in the error)."""
        self._seen.add(key)
        if key not in self.data:
            if default is _REQUIRED:
                raise self._err(key, "is required")
            return default
        value = self.data[key]
        if isinstance(value, bool) and bool not in types:
            raise self._err(key, f"must be {what}, not {value!r}")
        if not isinstance(value, types):
            raise self._err(key, f"must be {what}, not {value!r}")
        return value

    def str(self, key: str, default: Any = None) -> str | None:
        return self.value(key, default, (str,), "a string")

    def bool(self, key: str, default: Any = None) -> bool:
        return self.value(key, default, (bool,), "true or false")

    def int(self, key: str, default: Any = None, *, min: int | None = None, max: int | None = None) -> int:
        value = self.value(key, default, (int,), "an integer")
        if value is not None and min is not None and value < min:
            raise self._err(key, f"must be at least {min}, not {value}")
        if value is not None and max is not None and value > max:
            raise self._err(key, f"must be at most {max}, not {value}")
        return value

    def path(self, key: str, default: Any = None) -> Path | None:
        value = self.str(key, default)
        return None if value is None else self._resolve(value)

    def name(self, key: str, default: Any = None) -> str | None:
        value = self.str(key, default)
        if value is not None and not NAME_RE.match(value):
            raise self._err(key, f"{value!r} is not a publication name (letters, digits, . _ -)")
        return value

    def listen(self, key: str, default: str) -> tuple[str, int]:
        value = self.str(key, default)
        try:
            return parse_listen(value)
        except ValueError as e:
            raise self._err(key, str(e)) from None

    def items(self) -> list[tuple[str, Any]]:
        """Every key and value, for tables whose keys are data (URLs, names), all marked read."""
        self._seen.update(self.data)
        return list(self.data.items())

    def list_str(self, key: str, default: Any = None) -> list[str]:
        value = self.value(key, default, (list,), "a list of strings")
        if value is not None and not all(isinstance(v, str) for v in value):
            raise self._err(key, "must be a list of strings")
        return value

    def list_path(self, key: str) -> tuple[Path, ...]:
        """A list of file names, each relative to the config file's directory unless absolute."""
        return tuple(self._resolve(v) for v in self.list_str(key, []))

    def _resolve(self, value: str) -> Path:
        p = Path(value).expanduser()
        return p if p.is_absolute() else self.base / p

    def table(self, key: str) -> "Table":
        """The sub-table `key` (empty when absent); the same object on every call, so that
        several readers share what was read."""
        self._seen.add(key)
        child = self._children.get(key)
        if child is None:
            child = Table(self.data.get(key, {}), f"{self.where}.{key}" if self.where else key, self.source, self.base)
            self._children[key] = child
        return child  # type: ignore[return-value]

    def array(self, key: str) -> list["Table"]:
        """The array of tables `key` (`[[key]]`), each named `key[i]`; shared like `table`."""
        self._seen.add(key)
        children = self._children.get(key)
        if children is None:
            raw = self.data.get(key, [])
            if not isinstance(raw, list):
                raise self._err(key, "must be an array of tables ([[...]])")
            children = [Table(v, f"{key}[{i}]", self.source, self.base) for i, v in enumerate(raw)]
            self._children[key] = children
        return children  # type: ignore[return-value]

    def error(self, key: str, why: str) -> ConfigError:
        return self._err(key, why)

    def check_unknown(self) -> None:
        unknown = sorted(set(self.data) - self._seen)
        if unknown:
            where = f"[{self.where}]" if self.where else "the top level"
            raise ConfigError(f"{self.source}: {where} has unknown key(s): {', '.join(unknown)}")

    def check_tree(self) -> None:
        """check_unknown here and in every sub-table handed out; call once all readers ran."""
        self.check_unknown()
        for child in self._children.values():
            for t in child if isinstance(child, list) else [child]:
                t.check_tree()


_REQUIRED = object()


def parse_listen(value: str) -> tuple[str, int]:
    """`HOST:PORT` (IPv6 as `[::1]:PORT`) into (host, port)."""
    m = re.fullmatch(r"\[([0-9A-Fa-f:.]+)\]:(\d+)|([^:\[\]]+):(\d+)", value or "")
    if not m:
        raise ValueError(f"{value!r} is not HOST:PORT")
    host = m.group(1) or m.group(3)
    port = int(m.group(2) or m.group(4))
    if not 0 <= port <= 65535:
        raise ValueError(f"port {port} out of range")
    return host, port


@dataclass(frozen=True)
class CaSettings:
    """One certification authority whose repository we publish."""

    name: str  # URL segment: /ca/<name>.cer, /certs/<name>/<serial>.cer, CLI --issuer
    certificate: Path
    key: Path | None  # None: the key is offline, CRLs are handed in with `crl add`
    key_passphrase_file: Path | None
    key_passphrase_env: str | None
    full_crl: str | None  # publication name of the full CRL, e.g. eCertCA2-17CRL1
    partitions: bool  # one partitioned CRL per CRL distribution point URL in its certs
    partition_names: dict[str, str]  # URL -> name overrides (default: the URL's file name)
    arl: str | None  # publication name of the ARL (roots)
    arl_url: str | None  # distributionPoint written into the ARL's IDP


@dataclass(frozen=True)
class CrlSettings:
    daily: tuple[dt.time, ...]  # scheduled issuance times, UTC
    next_update: dt.timedelta
    supplementary_delay: dt.timedelta  # after a revocation, hold or release
    renew_margin: dt.timedelta  # issue at once if nextUpdate is this close
    arl_period: dt.timedelta
    arl_renew_margin: dt.timedelta
    reason_policy: ReasonPolicy
    drop_expired_after: dt.timedelta | None  # None: keep expired revoked certificates
    archive_retention: dt.timedelta


@dataclass(frozen=True)
class PolicySettings:
    """The limits the CA's certificate policy sets (CP 四.11, 六.21, 六.26, 七.23). The
    `[crl]` settings are held against them when the config is loaded, so that a setting
    that would break the published policy is refused at start, not found by an auditor."""

    max_next_update_hours: int = 24  # nextUpdate at most this long after thisUpdate
    max_revocation_publication_hours: int = 24  # a revocation is in a CRL within this
    min_arl_frequency_days: int = 365  # an ARL at least this often
    min_archive_years: int = 7  # CRLs kept at least this long
    # Scheduled maintenance allowed per week; recorded for maintenance planning, not
    # checked against any other setting.
    max_maintenance_minutes_per_week: int = 120


@dataclass(frozen=True)
class HttpSettings:
    """What the HTTP front-end needs of the config."""

    listen: tuple[str, int]
    base_url: str  # public URL prefix, for the index and the URLs printed at start
    max_age: int  # Cache-Control max-age cap for current CRLs (never past nextUpdate)
    # Seconds a connection has to deliver a complete request header, from when it opens
    # or sends the first byte of its next request; then 408 and close. 0: no limit.
    header_timeout: float = 10.0
    # Seconds a request's body may take to arrive once its header has; then 408. 0: none.
    body_timeout: float = 10.0
    # Seconds an idle keep-alive connection stays open between requests.
    keepalive_timeout: float = 75.0
    # Open connections; more are answered 503 and closed, so that a crowd of idle or slow
    # clients cannot take every file descriptor of the process (LDAP and the store too).
    max_connections: int = 1024


@dataclass(frozen=True)
class RepositorySettings:
    """The repository's own settings: the store, the publication directory, CRL issuance
    and the CAs. The composition root's `Settings` adds the front-ends' sections."""

    source: Path
    store_path: Path
    publication_dir: Path
    http: HttpSettings
    crl: CrlSettings
    cas: tuple[CaSettings, ...]
    policy: PolicySettings = PolicySettings()
    # Disclosure document kinds: the CP's and CPS's own, plus `[documents] kinds`.
    document_kinds: tuple[str, ...] = DEFAULT_KINDS
    # A shared PostgreSQL store (`store.url`); None: the SQLite file at store_path. With a
    # database, store_path still names where this node keeps the files beside its store.
    database: DatabaseSettings | None = None
    # Read the SQLite store file into the page cache once serving (publisher.prewarm).
    store_prewarm: bool = True

    def ca(self, name: str) -> CaSettings:
        for ca in self.cas:
            if ca.name == name:
                return ca
        raise KeyError(name)


def _seconds(table: Table, key: str, default: float) -> float:
    value = table.value(key, default, (int, float), "a number of seconds")
    if value < 0:
        raise table.error(key, f"must not be negative, not {value}")
    return float(value)


def _parse_hhmm(table: Table, key: str, value: str) -> dt.time:
    m = re.fullmatch(r"(\d{1,2}):(\d{2})", value)
    if not m or int(m.group(1)) > 23 or int(m.group(2)) > 59:
        raise table.error(key, f"{value!r} is not a time of day HH:MM (UTC)")
    return dt.time(int(m.group(1)), int(m.group(2)), tzinfo=dt.timezone.utc)


def _crl_settings(t: Table) -> CrlSettings:
    daily = t.list_str("daily", ["01:15", "06:15", "11:00"])
    if not daily:
        raise t.error("daily", "needs at least one time: the CP requires a CRL every 24 hours")
    times = tuple(sorted({_parse_hhmm(t, "daily", v) for v in daily}))
    next_hours = t.int("next_update_hours", 24, min=1, max=24 * 7)
    delay = t.int("supplementary_delay_seconds", 300, min=0, max=24 * 3600)
    policy = t.str("reason_unspecified", "omit")
    try:
        reason_policy = ReasonPolicy(policy)
    except ValueError:
        raise t.error("reason_unspecified", f"{policy!r}: use \"omit\" (RFC 5280) or \"write\" (CPS)") from None
    expired = t.value("expired_revoked", "keep", (str, int), '"keep" or a number of days')
    if isinstance(expired, str):
        if expired != "keep":
            raise t.error("expired_revoked", f'{expired!r}: use "keep" or a number of days')
        drop = None
    else:
        if expired < 0:
            raise t.error("expired_revoked", "days must not be negative")
        drop = dt.timedelta(days=expired)
    years = t.int("archive_years", 7, min=7)
    s = CrlSettings(
        daily=times,
        next_update=dt.timedelta(hours=next_hours),
        supplementary_delay=dt.timedelta(seconds=delay),
        renew_margin=dt.timedelta(minutes=t.int("renew_margin_minutes", 120, min=1)),
        arl_period=dt.timedelta(days=t.int("arl_period_days", 365, min=1, max=366 * 2)),
        arl_renew_margin=dt.timedelta(days=t.int("arl_renew_days", 30, min=1)),
        reason_policy=reason_policy,
        drop_expired_after=drop,
        archive_retention=dt.timedelta(days=round(365.25 * years)),
    )
    if s.renew_margin >= s.next_update:
        raise t.error("renew_margin_minutes", "must be shorter than next_update_hours")
    t.check_unknown()
    return s


def _policy_settings(t: Table) -> PolicySettings:
    d = PolicySettings()
    p = PolicySettings(**{key: t.int(key, getattr(d, key), min=1) for key in (
        "max_next_update_hours", "max_revocation_publication_hours", "min_arl_frequency_days",
        "min_archive_years", "max_maintenance_minutes_per_week")})
    t.check_unknown()
    return p


def largest_gap(daily: tuple[dt.time, ...]) -> dt.timedelta:
    """The longest time between two consecutive daily issuances, across midnight too."""
    minutes = [t.hour * 60 + t.minute for t in daily]
    gaps = [b - a for a, b in zip(minutes, minutes[1:])] + [minutes[0] + 24 * 60 - minutes[-1]]
    return dt.timedelta(minutes=max(gaps))


def policy_violations(crl: CrlSettings, policy: PolicySettings) -> list[tuple[str, str]]:
    """(crl key, why) for every [crl] setting that breaks the declared policy."""
    out = []
    hours = dt.timedelta(hours=1)
    if crl.next_update > policy.max_next_update_hours * hours:
        out.append(("next_update_hours",
                    f"{crl.next_update // hours} h breaks policy.max_next_update_hours = "
                    f"{policy.max_next_update_hours}: a CRL's nextUpdate may be at most that long after its thisUpdate"))
    limit = policy.max_revocation_publication_hours * hours
    if crl.supplementary_delay > limit:
        out.append(("supplementary_delay_seconds",
                    f"{int(crl.supplementary_delay.total_seconds())} s breaks "
                    f"policy.max_revocation_publication_hours = {policy.max_revocation_publication_hours}: "
                    f"a revocation must be in a CRL within that time"))
    gap = largest_gap(crl.daily)
    if gap > limit:
        out.append(("daily",
                    f"the issuance times leave {gap} between two CRLs, which breaks "
                    f"policy.max_revocation_publication_hours = {policy.max_revocation_publication_hours}: "
                    f"should a supplementary CRL not be issued, the next scheduled one must still come in time"))
    if crl.arl_period > dt.timedelta(days=policy.min_arl_frequency_days):
        out.append(("arl_period_days",
                    f"{crl.arl_period.days} days breaks policy.min_arl_frequency_days = "
                    f"{policy.min_arl_frequency_days}: an ARL must be issued at least that often"))
    if crl.archive_retention < dt.timedelta(days=round(365.25 * policy.min_archive_years)):
        years = round(crl.archive_retention.days / 365.25)
        out.append(("archive_years",
                    f"{years} breaks policy.min_archive_years = {policy.min_archive_years}: "
                    f"CRLs must be archived at least that long"))
    return out


def _ca_settings(t: Table) -> CaSettings:
    name = t.name("name", _REQUIRED)
    key = t.path("key")
    names = t.table("partition_names")
    partition_names = {}
    for url, value in names.items():
        if not isinstance(value, str) or not NAME_RE.match(value):
            raise names.error(url, f"{value!r} is not a publication name")
        partition_names[url] = value
    cert = t.path("certificate", _REQUIRED)
    if not cert.is_file():
        raise t.error("certificate", f"no such file: {cert}")
    ca = CaSettings(
        name=name,
        certificate=cert,
        key=key,
        key_passphrase_file=t.path("key_passphrase_file"),
        key_passphrase_env=t.str("key_passphrase_env"),
        full_crl=t.name("full_crl"),
        partitions=t.bool("partitions", True),
        partition_names=partition_names,
        arl=t.name("arl"),
        arl_url=t.str("arl_url"),
    )
    # Not check_unknown(): the front-ends read their own keys of this table too.
    return ca


def read_config(path: Path) -> Table:
    """The config file as a `Table` tree; ConfigError names the file and what is wrong."""
    path = Path(path)
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"{path}: config file not found") from None
    except OSError as e:
        raise ConfigError(f"{path}: cannot read: {e.strerror}") from None
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(f"{path}: not valid TOML: {e}") from None
    except UnicodeDecodeError:
        raise ConfigError(f"{path}: not UTF-8 text") from None
    return Table(raw, "", path, path.resolve().parent)


def repository_settings(top: Table) -> RepositorySettings:
    """Read the repository's own sections from `top`; the caller checks for unknown keys
    (`top.check_tree()`) once the front-ends have read theirs."""
    path = top.source
    store = top.table("store")
    store_path = store.path("path", "pkirepo.sqlite")
    database = database_settings(store)
    prewarm = store.bool("prewarm", None)
    if prewarm is not None and database is not None:
        raise store.error("prewarm", "only applies to the SQLite store (PostgreSQL keeps its own buffers: "
                                     "see its pg_prewarm extension)")
    store.check_unknown()

    http = top.table("http")
    listen = http.listen("listen", "127.0.0.1:8080")
    base_url = http.str("base_url", f"http://{listen[0]}:{listen[1]}").rstrip("/")
    if not re.match(r"^https?://", base_url):
        raise http.error("base_url", f"{base_url!r} must start with http:// or https://")
    d = HttpSettings(listen, base_url, 0)
    timeouts = {key: _seconds(http, key, getattr(d, key))
                for key in ("header_timeout", "body_timeout", "keepalive_timeout")}
    max_connections = http.int("max_connections", d.max_connections, min=1)
    http.check_unknown()

    pub = top.table("publication")
    pub_dir = pub.path("dir", "pub")
    max_age = pub.int("max_age_seconds", 600, min=0, max=86400)
    pub.check_unknown()

    docs = top.table("documents")
    kinds = list(DEFAULT_KINDS)
    for kind in docs.list_str("kinds", []):
        if not KIND_RE.match(kind):
            raise docs.error("kinds", f"{kind!r} must be lower-case letters, digits and '-', starting with a letter")
        if kind not in kinds:
            kinds.append(kind)
    docs.check_unknown()

    crl_table = top.table("crl")
    crl = _crl_settings(crl_table)
    policy = _policy_settings(top.table("policy"))
    broken = policy_violations(crl, policy)
    if broken:
        raise ConfigError("\n".join(f"{path}: crl.{key}: {why}" for key, why in broken))

    ca_tables = top.array("ca")
    if not ca_tables:
        raise ConfigError(f"{path}: at least one [[ca]] table is required")
    cas = tuple(_ca_settings(t) for t in ca_tables)
    seen_names: dict[str, str] = {}
    for i, ca in enumerate(cas):
        for kind, n in [("ca name", ca.name), ("full_crl", ca.full_crl), ("arl", ca.arl), *[("partition_names", v) for v in ca.partition_names.values()]]:
            if n is None:
                continue
            if kind != "ca name" and n in seen_names and seen_names[n] != "ca name":
                raise ConfigError(f"{path}: ca[{i}].{kind}: name {n!r} is used twice")
            if kind == "ca name" and n in seen_names and seen_names[n] == "ca name":
                raise ConfigError(f"{path}: ca[{i}].name: CA name {n!r} is used twice")
            seen_names.setdefault(n, kind)

    return RepositorySettings(
        source=path,
        store_path=store_path,
        publication_dir=pub_dir,
        http=HttpSettings(listen=listen, base_url=base_url, max_age=max_age,
                          max_connections=max_connections, **timeouts),
        crl=crl,
        cas=cas,
        policy=policy,
        document_kinds=tuple(kinds),
        database=database,
        store_prewarm=prewarm is not False,
    )
