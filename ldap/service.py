"""The LDAP front-end inside `pkirepo serve`: the listener and the snapshot refresh loop as
an aiohttp cleanup context.

The composition root calls `setup(app, settings, store=...)` once; the listener then starts
with the other contexts (after the repository's, so issuers are in the store) and stops at
shutdown right after the HTTP site stops accepting.  The directory is rebuilt whenever the
store's change token moves (any process: `pkirepo publish`, `revoke`, ...), polled every
`poll_interval` seconds, and swapped whole.
"""
from __future__ import annotations

import asyncio
import logging

from aiohttp import web

from publisher.store import Store
from publisher.tasks import cancel_and_wait

from .build import DirectoryBuilder
from .directory import DirectoryHolder
from .listener import LdapListener, start_ldap
from .settings import Layout, LdapSettings

log = logging.getLogger("pkirepo.ldap")

LDAP_LISTENER = web.AppKey("ldap_listener", LdapListener)
LDAP_DIRECTORY = web.AppKey("ldap_directory", DirectoryHolder)


class DirectoryService:
    """Keeps `holder.current` equal to what the store holds, within `poll_interval`."""

    def __init__(self, store: Store, layout: Layout, holder: DirectoryHolder,
                 interval: float, *, base_url: str = "") -> None:
        self.store = store
        self.builder = DirectoryBuilder(layout, base_url=base_url)
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


def setup(app: web.Application, settings: LdapSettings, *, store: Store, base_url: str = "",
          listen_fd: int | None = None) -> list[str]:
    """Register the LDAP listener and the directory refresh; returns the line `pkirepo serve`
    prints for it (none when `settings.listen` is empty: no LDAP in this app). `base_url` is
    where HTTP serves the documents, named by each CA entry's labeledURI. `listen_fd` is a
    listening socket inherited from a supervisor, used instead of binding the address."""
    if not settings.enabled:
        return []
    holder = DirectoryHolder()
    app[LDAP_DIRECTORY] = holder

    async def ldap_context(app: web.Application):
        service = DirectoryService(store, settings.layout, holder, settings.poll_interval, base_url=base_url)
        await service.refresh()  # the first snapshot before the port opens
        listener = await start_ldap(settings, holder, fd=listen_fd)
        app[LDAP_LISTENER] = listener
        naming = holder.current.naming_contexts
        log.info("serving LDAP on %s:%d%s", listener.host, listener.port,
                 f" (naming context {naming[0]})" if naming else "")
        task = asyncio.create_task(service.run(), name="pkirepo-ldap-refresh")
        try:
            yield
        finally:
            await cancel_and_wait(task)
            await listener.stop()

    async def stop_accepting(app: web.Application) -> None:
        # on_shutdown runs right after the HTTP site stops accepting: the LDAP port closes in
        # the same phase (the context's cleanup, later, only finds it stopped).
        listener = app.get(LDAP_LISTENER)
        if listener is not None:
            await listener.stop()

    app.cleanup_ctx.append(ldap_context)
    app.on_shutdown.append(stop_accepting)
    host, port = settings.host_port
    shown = f"[{host}]" if ":" in host else (host or "0.0.0.0")
    base = settings.layout.suffix or settings.layout.base
    return [f"LDAP:         ldap://{shown}:{port}/" + (f" (base {base})" if base else "")]
