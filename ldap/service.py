"""The LDAP front-end inside `pkirepo serve`: settings from config, the listener and the
snapshot refresh loop as an aiohttp cleanup context.

The app factory calls `setup(app, settings, listen=...)` once; the listener then starts with
the other contexts (after the repository's, so issuers are in the store) and stops at
shutdown right after the HTTP site stops accepting.  The directory is rebuilt whenever the
store's change token moves (any process: `pkirepo publish`, `revoke`, ...), polled every
`poll_interval` seconds, and swapped whole.
"""
from __future__ import annotations

import asyncio
import dataclasses
import logging
from typing import Any

from aiohttp import web

from publisher.errors import ConfigError
from publisher.store import Store

from .build import DirectoryBuilder, Layout
from .directory import DirectoryHolder
from .listener import LdapListener, start_ldap
from .settings import LdapSettings

log = logging.getLogger("pkirepo.ldap")

LDAP_LISTENER = web.AppKey("ldap_listener", LdapListener)
LDAP_DIRECTORY = web.AppKey("ldap_directory", DirectoryHolder)

# Keys of [ldap] read by LdapSettings and Layout; anything else there is a typo.
_LAYOUT_KEYS = ("suffix", "base", "crl_dns")


def read_settings(settings: Any) -> tuple[LdapSettings, Layout]:
    """[ldap] and the ldap_* keys of each [[ca]], validated (ConfigError names the key)."""
    table = getattr(settings, "sections", {}).get("ldap")
    data = dict(table.data) if table is not None else {}
    known = {f.name for f in dataclasses.fields(LdapSettings)} | set(_LAYOUT_KEYS)
    unknown = sorted(set(data) - known)
    if unknown:
        raise ConfigError(f"{getattr(settings, 'source', 'config')}: [ldap] has unknown key(s): "
                          f"{', '.join(unknown)}")
    if table is not None:
        table._seen.update(data)  # reported as read to publisher.config's Table
    try:
        ls = LdapSettings.from_config({k: v for k, v in data.items() if k not in _LAYOUT_KEYS})
    except ConfigError as e:
        raise ConfigError(f"{getattr(settings, 'source', 'config')}: {e.message}") from None
    return ls, Layout.from_settings(settings)


def listen_address(settings: Any, override: str | None) -> str:
    """What `pkirepo serve` listens on for LDAP: --ldap, else [ldap] listen (default
    127.0.0.1:1389).  An empty string means LDAP is off."""
    if override is not None:
        LdapSettings.from_config({"listen": override})  # validates HOST:PORT
        return override
    return read_settings(settings)[0].listen


class DirectoryService:
    """Keeps `holder.current` equal to what the store holds, within `poll_interval`."""

    def __init__(self, store: Store, layout: Layout, holder: DirectoryHolder,
                 interval: float) -> None:
        self.store = store
        self.builder = DirectoryBuilder(layout)
        self.holder = holder
        self.interval = interval
        self.token: int | None = None

    async def refresh(self) -> bool:
        """Rebuild if the change token moved; True when a new snapshot was swapped in."""
        token = await self.store.change_token()
        if token == self.token:
            return False
        directory = await self.builder.build(self.store)
        self.holder.swap(directory)
        self.token = token
        log.debug("LDAP directory rebuilt: %d entries at change token %d", len(directory), token)
        return True

    async def run(self) -> None:
        while True:
            await asyncio.sleep(self.interval)
            try:
                await self.refresh()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("LDAP directory refresh failed; serving the previous snapshot")


def setup(app: web.Application, settings: Any, *, listen: str | None) -> None:
    """Register the LDAP listener on `listen` (None or "": no LDAP in this app)."""
    if not listen:
        return
    ldap_settings, layout = read_settings(settings)
    ldap_settings = dataclasses.replace(ldap_settings, listen=listen)
    holder = DirectoryHolder()
    app[LDAP_DIRECTORY] = holder

    async def ldap_context(app: web.Application):
        from publisher.app import EXTRA_URLS, REPO

        service = DirectoryService(app[REPO].store, layout, holder, ldap_settings.poll_interval)
        await service.refresh()  # the first snapshot before the port opens
        listener = await start_ldap(ldap_settings, holder)
        app[LDAP_LISTENER] = listener
        host = f"[{listener.host}]" if ":" in listener.host else listener.host
        naming = holder.current.naming_contexts
        app[EXTRA_URLS].append(f"LDAP:         ldap://{host}:{listener.port}/"
                               + (f" (base {naming[0]})" if naming else ""))
        task = asyncio.create_task(service.run(), name="pkirepo-ldap-refresh")
        try:
            yield
        finally:
            task.cancel()
            try:
                await task
            except asyncio.CancelledError:
                pass
            await listener.stop()

    async def stop_accepting(app: web.Application) -> None:
        # on_shutdown runs right after the HTTP site stops accepting: the LDAP port closes in
        # the same phase (the context's cleanup, later, only finds it stopped).
        listener = app.get(LDAP_LISTENER)
        if listener is not None:
            await listener.stop()

    app.cleanup_ctx.append(ldap_context)
    app.on_shutdown.append(stop_accepting)
