"""The `[store]` keys of a shared server database: `url`, where the password comes from,
and the pool size. The password itself is never in the TOML (configs get copied, printed
and committed): it is read from `password_file` or the environment variable named by
`password_env` when the store is opened, and never kept in the settings.
"""
from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

from .errors import ConfigError

URL_RE = re.compile(r"^postgres(?:ql)?://")
# user:password@ in the URL's authority.
_PASSWORD_IN_URL = re.compile(r"^postgres(?:ql)?://[^/@]*:[^/@]*@")


@dataclass(frozen=True)
class DatabaseSettings:
    url: str  # postgresql://user@host:port/database (libpq URL, without a password)
    password_file: Path | None = None
    password_env: str | None = None
    pool_size: int = 10  # connections of this process to the server, at most
    source: str = ""  # the config file, for messages
    # Seconds within which another node takes over publication from one that died or lost
    # its connection (pg_leader.py).
    leader_timeout: int = 30
    # Seconds to wait for the server when connecting, at start and on every reconnection.
    connect_timeout: int = 10

    def password(self) -> str | None:
        """Read the password now; ConfigError names the key and the file or variable."""
        return read_password(self.password_file, self.password_env, file_key=f"{self.source}: store.password_file",
                             env_key=f"{self.source}: store.password_env")


def redact(dsn: str) -> str:
    """The URL without a password, for messages."""
    if "@" not in dsn or "://" not in dsn:
        return dsn
    scheme, rest = dsn.split("://", 1)
    creds, host = rest.rsplit("@", 1)
    return f"{scheme}://{creds.split(':', 1)[0]}@{host}"


def database_settings(store) -> DatabaseSettings | None:
    """Read the database keys of the `[store]` table (a config.Table); None without `url`."""
    url = store.str("url", None)
    password_file = store.path("password_file", None)
    password_env = store.str("password_env", None)
    pool_size = store.int("pool_size", 10, min=1, max=1000)
    leader_timeout = store.int("leader_timeout", 30, min=1, max=3600)
    connect_timeout = store.int("connect_timeout", 10, min=1, max=600)
    if url is None:
        for key, value in (("password_file", password_file), ("password_env", password_env),
                           ("leader_timeout", store.data.get("leader_timeout")),
                           ("connect_timeout", store.data.get("connect_timeout"))):
            if value is not None:
                raise store.error(key, "only applies with store.url (a PostgreSQL store)")
        return None
    if not URL_RE.match(url):
        raise store.error("url", f"{url!r} must start with postgresql:// (the SQLite store is store.path)")
    if _PASSWORD_IN_URL.match(url) or re.search(r"[?&]password=", url):
        raise store.error("url", "must not hold the password: put it in the file named by store.password_file "
                                 "or the environment variable named by store.password_env")
    if password_file is not None and password_env is not None:
        raise store.error("password_env", "give store.password_file or store.password_env, not both")
    if password_env is not None and not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", password_env):
        raise store.error("password_env", f"{password_env!r} is not an environment variable name")
    return DatabaseSettings(url, password_file, password_env, pool_size, str(store.source),
                            leader_timeout=leader_timeout, connect_timeout=connect_timeout)


def url_holds_password(url: str) -> bool:
    """A password in a PostgreSQL URL (user:password@ or ?password=), which is refused
    wherever a URL is given: command lines and configs are seen by others."""
    return bool(_PASSWORD_IN_URL.match(url) or re.search(r"[?&]password=", url))


def read_password(password_file: Path | None, password_env: str | None, *, file_key: str, env_key: str) -> str | None:
    """The password from a file (a trailing newline, as `echo > file` leaves, is not part of
    it) or an environment variable; None when neither is given (trust, peer, or a ~/.pgpass /
    PGPASSWORD as libpq reads them). ConfigError names `file_key` or `env_key`."""
    if password_file is not None:
        try:
            return password_file.read_text(encoding="utf-8").rstrip("\r\n")
        except OSError as e:
            raise ConfigError(f"{file_key}: cannot read {password_file}: {e.strerror or e}") from None
    if password_env is not None:
        value = os.environ.get(password_env)
        if value is None:
            raise ConfigError(f"{env_key}: the environment variable {password_env} is not set")
        return value
    return None
