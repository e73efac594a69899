"""The LDAP front-end inside `pkirepo serve`: the listener and the directory refresh loop as
an aiohttp cleanup context.

The composition root calls `setup(app, settings, store=...)` once; the listener then starts
with the other contexts (after the repository's, so issuers are in the store) and stops at
shutdown right after the HTTP site stops accepting.

What the directory serves follows the store's change log (any process: `pkirepo publish`,
`revoke`, ...), polled every `poll_interval` seconds.  Subscriber entries are read from the
store (`ldap.subscribers`), so a revocation, hold or release only drops that certificate's
cached entry; a new CRL, CA or document rebuilds the small snapshot of the rest of the tree.
Either way a new `StoreDirectory` is swapped in (the server's response cache starts afresh).
Added certificates are read into the store's name index (`ldap.name_index`) a bounded batch
per turn, so that catching up after a large import never holds the loop or delays a
revocation.  Nothing proportional to the store runs before the port opens.
"""
from __future__ import annotations

import asyncio
import logging
from typing import Callable

from aiohttp import web

from publisher.errors import Unavailable
from publisher.readiness import Component, Readiness
from publisher.store import CERT_EVENTS, Store
from publisher.tasks import cancel_and_wait

from . import name_index
from .build import DirectoryBuilder
from .directory import Directory, DirectoryHolder
from .listener import LdapListener, start_ldap
from .settings import Layout, LdapSettings
from .subscribers import EntryCache, StoreDirectory

log = logging.getLogger("pkirepo.ldap")

LDAP_LISTENER = web.AppKey("ldap_listener", LdapListener)
LDAP_DIRECTORY = web.AppKey("ldap_directory", DirectoryHolder)

# Change-log kinds that change one certificate's entry (detail: its serial in hex).
# Kinds that add certificates: the name index has new rows to read.
ADD_EVENTS = frozenset({"cert-add", "import-revoked"})
_EVENT_PAGE = 1000
# Certificates read into the name index per refresh: about a second of parsing at most, in
# batches that each hold the loop for a few milliseconds.
INDEX_PER_REFRESH = 4000


class DirectoryService:
    """Keeps `holder.current` equal to what the store holds, within `poll_interval`."""

    def __init__(self, store: Store, layout: Layout, holder: DirectoryHolder,
                 interval: float, *, base_url: str = "", entry_cache: int = 10_000) -> None:
        self.store = store
        self.builder = DirectoryBuilder(layout, base_url=base_url)
        self.holder = holder
        self.interval = interval
        self.cache = EntryCache(entry_cache)
        self.token: int | None = None
        self.names_ready = False
        self._event_id = 0
        self._snapshot: Directory | None = None
        self._cas: list[tuple[int, str]] = []
        self._unavailable = False

    async def refresh(self) -> bool:
        """Apply what changed since the last call; True when a new directory was swapped in."""
        token = await self.store.change_token()
        if self.names_ready and token == self.token:
            return False
        rebuild = self._snapshot is None
        if rebuild:
            self._event_id = token
        else:
            rebuild = await self._apply_events()
        if rebuild:
            self._snapshot = await self.builder.build(self.store, subscribers=False)
            if self.builder.subscriber_cas != self._cas:
                self.cache.clear()  # entries name their CA's DN, which moved
                self._cas = list(self.builder.subscriber_cas)
        if not self.names_ready or token != self.token:
            self.names_ready = await name_index.catch_up(self.store, max_certs=INDEX_PER_REFRESH)
        assert self._snapshot is not None
        self.holder.swap(StoreDirectory(self._snapshot, self.store, self._cas, self.cache,
                                        names_ready=self.names_ready))
        self.token = max(token, self._event_id)
        log.debug("LDAP directory at change token %d (%d snapshot entries, %d cached subscribers)",
                  self.token, len(self._snapshot), len(self.cache))
        return True

    async def start(self) -> None:
        """The first directory, without reading the certificates: the snapshot of the small
        part, and whether the name index is complete."""
        token = await self.store.change_token()
        self._event_id = token
        self._snapshot = await self.builder.build(self.store, subscribers=False)
        self._cas = list(self.builder.subscriber_cas)
        upto, last = await self.store.name_index_position()
        self.names_ready = upto >= last
        self.holder.swap(StoreDirectory(self._snapshot, self.store, self._cas, self.cache,
                                        names_ready=self.names_ready))
        self.token = token

    async def _apply_events(self) -> bool:
        """Drop the cached entries of certificates whose status changed; True when the
        snapshot must be rebuilt (anything but certificate changes)."""
        rebuild = False
        while True:
            events = await self.store.events_since(self._event_id, limit=_EVENT_PAGE)
            for ev in events:
                self._event_id = ev.id
                if ev.kind in CERT_EVENTS:
                    cert = ev.certificate()
                    if cert is None:
                        log.warning("LDAP: change-log event %d (%s) names no certificate", ev.id, ev.kind)
                        self.cache.clear()
                    else:
                        self.cache.drop(cert)
                elif ev.kind in ADD_EVENTS:
                    self.names_ready = False  # read the new certificates into the index
                else:
                    rebuild = True
            if len(events) < _EVENT_PAGE:
                return rebuild

    async def run(self) -> None:
        while True:
            # While the name index is behind, the next batch follows at once (each batch
            # returns to the loop between store writes; changes are applied in between).
            # Otherwise the next refresh comes at the next change by any process or node (a
            # shared database notifies), or after `interval`.
            if self.names_ready:
                await self.store.wait_for_change(self.interval)
            else:
                await asyncio.sleep(0)
            try:
                await self.refresh()
                if self._unavailable:
                    log.info("LDAP directory follows the store again")
                    self._unavailable = False
            except asyncio.CancelledError:
                raise
            except Unavailable as e:
                # The store is down (a shared database restarting): one line, not one a second.
                if not self._unavailable:
                    log.warning("LDAP directory refresh: %s; serving the previous one until the store is back",
                                e.message)
                    self._unavailable = True
                await asyncio.sleep(self.interval)
            except Exception:
                log.exception("LDAP directory refresh failed; serving the previous one")
                await asyncio.sleep(self.interval)


def setup(app: web.Application, settings: LdapSettings, *, store: Store, base_url: str = "",
          readiness: Readiness | None = None, listen_fd: int | None = None,
          observe: Callable[[str, str], None] | None = None) -> list[str]:
    """Register the LDAP listener and the directory refresh; returns the line `pkirepo serve`
    prints for it (none when `settings.listen` is empty: no LDAP in this app). `base_url` is
    where HTTP serves the documents, named by each CA entry's labeledURI. `listen_fd` is a
    listening socket inherited from a supervisor, used instead of binding the address."""
    if not settings.enabled:
        return []
    holder = DirectoryHolder()
    app[LDAP_DIRECTORY] = holder

    started: list[DirectoryService] = []

    async def ldap_context(app: web.Application):
        service = DirectoryService(store, settings.layout, holder, settings.poll_interval, base_url=base_url,
                                   entry_cache=settings.entry_cache)
        started.append(service)
        await service.start()  # the small snapshot before the port opens; certificates are read later
        listener = await start_ldap(settings, holder, fd=listen_fd)
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
                       "entries": len(holder.current) if holder.current is not None else 0,
                       # Until it is complete, cn/mail searches over subscribers answer unavailable.
                       "name_index": "complete" if started and started[-1].names_ready else "catching up"}
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
