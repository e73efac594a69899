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
from typing import Callable

from aiohttp import web

from publisher.readiness import Component, Readiness
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
          readiness: Readiness | None = None, observe: Callable[[str, str], None] | None = None) -> list[str]:
    """Register the LDAP listener and the directory refresh; returns the line `pkirepo serve`
    prints for it (none when `settings.listen` is empty: no LDAP in this app). `base_url` is
    where HTTP serves the documents, named by each CA entry's labeledURI."""
    if not settings.enabled:
        return []
    holder = DirectoryHolder()
    app[LDAP_DIRECTORY] = holder

    async def ldap_context(app: web.Application):
        service = DirectoryService(store, settings.layout, holder, settings.poll_interval, base_url=base_url)
        await service.refresh()  # the first snapshot before the port opens
        listener = await start_ldap(settings, holder)
        app[LDAP_LISTENER] = listener
        if observe is not None:
            listener.factory.observe = lambda op: observe(*operation_result(op))
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
    if readiness is not None:
        async def accepting(now) -> list[Component]:
            # A real connection to our own port: the listener answers, not just exists.
            listener = app.get(LDAP_LISTENER)
            if listener is None:
                return [Component("ldap", False, "starting", "LDAP listener not started")]
            try:
                _, writer = await asyncio.wait_for(asyncio.open_connection(listener.host, listener.port), 2.0)
            except (OSError, asyncio.TimeoutError) as e:
                return [Component("ldap", False, "not accepting", f"{listener.host}:{listener.port}: {e}")]
            writer.close()
            figures = {"listen": f"{listener.host}:{listener.port}", "connections": len(listener.factory.connections),
                       "entries": len(holder.current) if holder.current is not None else 0}
            return [Component("ldap", True, "accepting", None, figures)]

        readiness.register("ldap", accepting)
    host, port = settings.host_port
    shown = f"[{host}]" if ":" in host else (host or "0.0.0.0")
    base = settings.layout.suffix or settings.layout.base
    return [f"LDAP:         ldap://{shown}:{port}/" + (f" (base {base})" if base else "")]


_OPERATIONS = {0x61: "bind", 0x65: "search", 0x67: "modify", 0x69: "add", 0x6B: "delete", 0x6D: "modify_dn",
               0x6F: "compare", 0x78: "extended"}


def operation_result(op: bytes) -> tuple[str, str]:
    """(operation, result code) of an encoded LDAP response: the tag names the operation,
    the ENUMERATED after the length its resultCode."""
    name = _OPERATIONS.get(op[0], "other")
    try:
        first = op[1]
        i = 2 + (first & 0x7F if first & 0x80 else 0)
        if op[i] == 0x0A and op[i + 1] == 1:
            return name, str(op[i + 2])
    except IndexError:
        pass
    return name, "unknown"
