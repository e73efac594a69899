"""Starting and stopping the LDAP listener on the running asyncio loop.

Twisted's asyncio reactor drives the sockets, so LDAP and aiohttp share one event loop.
The entry point installs it globally (`install_reactor`); when the global reactor is not an
asyncio reactor on the running loop (tests, which get a fresh loop each), the listener uses a
private `AsyncioSelectorReactor` bound to that loop.  Nothing here calls `reactor.stop()`:
asyncio owns the loop.
"""
from __future__ import annotations

import asyncio
import logging
import os
import socket
import sys
from dataclasses import dataclass
from typing import Any

from twisted.internet.asyncioreactor import AsyncioSelectorReactor

from publisher.errors import ConfigError

from .server import DirectoryFactory, DirectoryProvider
from .settings import LdapSettings

log = logging.getLogger("pkirepo.ldap")


def install_reactor(loop: asyncio.AbstractEventLoop | None = None) -> Any:
    """Install Twisted's asyncio reactor on loop (default: the running one) and mark it
    running without signal handlers.  Call from the entry point before anything imports
    `twisted.internet.reactor`.  Idempotent for the same loop."""
    loop = loop or asyncio.get_running_loop()
    existing = sys.modules.get("twisted.internet.reactor")
    if existing is not None:
        if isinstance(existing, AsyncioSelectorReactor):
            if existing._asyncioEventloop is not loop:
                # A second serve() in one process (tests): listeners use a private reactor
                # on this loop instead (see reactor_for).
                log.warning("Twisted's reactor is bound to an earlier event loop")
            return existing
        raise RuntimeError(f"a non-asyncio Twisted reactor is already installed: {existing!r}")
    from twisted.internet import asyncioreactor
    from twisted.logger import STDLibLogObserver, globalLogBeginner

    asyncioreactor.install(loop)
    from twisted.internet import reactor

    # Twisted buffers its log events until told where to send them: the stdlib's logging,
    # like the rest of pkirepo (logger "twisted").
    globalLogBeginner.beginLoggingTo([STDLibLogObserver(name="twisted")], redirectStandardIO=False)
    reactor.startRunning(installSignalHandlers=False)  # type: ignore[attr-defined]
    return reactor


def reactor_for(loop: asyncio.AbstractEventLoop) -> Any:
    existing = sys.modules.get("twisted.internet.reactor")
    if isinstance(existing, AsyncioSelectorReactor) and existing._asyncioEventloop is loop:
        return existing
    return AsyncioSelectorReactor(loop)


@dataclass
class LdapListener:
    """A running listener: `host`, `port` (the bound one, useful with port 0), `factory`."""

    host: str
    port: int
    factory: DirectoryFactory
    _port: Any
    _loop: asyncio.AbstractEventLoop
    _stopped: bool = False
    _listening: bool = True

    async def stop_accepting(self) -> None:
        """Close this process's listening port (an inherited socket stays open in the
        supervisor and the other workers). Idempotent."""
        if not self._listening:
            return
        self._listening = False
        d = self._port.stopListening()
        if d is not None:
            await d.asFuture(self._loop)

    async def drain(self, timeout: float) -> None:
        """Stop accepting, then wait up to `timeout` seconds for the clients to end their
        sessions themselves (a worker leaving a rolling restart: a session cut between a
        bind and its search would fail the client)."""
        await self.stop_accepting()
        if not self.factory.connections:
            return
        gone = self._loop.create_future()
        self.factory._closed_waiters.append(lambda: gone.done() or gone.set_result(None))
        try:
            await asyncio.wait_for(gone, timeout)
        except asyncio.TimeoutError:
            pass

    async def stop(self, grace: float = 2.0) -> None:
        """Stop accepting, let sessions end for up to `grace` seconds, then cut the rest.
        Idempotent."""
        if self._stopped:
            return
        self._stopped = True
        await self.stop_accepting()
        conns = list(self.factory.connections)
        if not conns:
            return
        gone = self._loop.create_future()

        def _all_closed() -> None:
            if not gone.done():
                gone.set_result(None)

        self.factory._closed_waiters.append(_all_closed)
        for p in conns:
            p._closing = True
            p.transport.loseConnection()
        try:
            await asyncio.wait_for(asyncio.shield(gone), grace)
        except asyncio.TimeoutError:
            for p in list(self.factory.connections):
                p.transport.abortConnection()
            try:
                await asyncio.wait_for(gone, 1.0)
            except asyncio.TimeoutError:
                log.warning("%d LDAP connections did not close", len(self.factory.connections))


async def start_ldap(
    settings: LdapSettings,
    provider: DirectoryProvider,
    *,
    listen: str | None = None,
    reactor: Any = None,
    fd: int | None = None,
) -> LdapListener:
    """Listen on `listen` (default settings.listen; port 0 picks a free one) and serve the
    snapshot `provider()` returns at each operation.  Raises ConfigError if the address
    cannot be bound. With `fd`, accept on that listening socket instead (inherited from a
    supervisor; this function closes the descriptor, Twisted keeps a copy)."""
    loop = asyncio.get_running_loop()
    reactor = reactor or reactor_for(loop)
    host, port = LdapSettings(listen=listen).host_port if listen else settings.host_port
    factory = DirectoryFactory(provider, settings, reactor)
    from twisted.internet.error import CannotListenError

    if fd is not None:
        sock = socket.socket(fileno=fd)
        family = sock.family
        sock.detach()
        os.set_blocking(fd, False)
        try:
            p = reactor.adoptStreamPort(fd, family, factory)
        finally:
            os.close(fd)
        bound = p.getHost()
        log.info("LDAP accepting on the inherited socket %s:%d", bound.host, bound.port)
        return LdapListener(host=bound.host, port=bound.port, factory=factory, _port=p, _loop=loop)
    try:
        p = reactor.listenTCP(port, factory, interface=host or "", backlog=128)
    except CannotListenError as e:
        raise ConfigError(f"cannot listen for LDAP on {host}:{port}: {e.socketError}") from e
    bound = p.getHost()
    log.info("LDAP listening on %s:%d", bound.host, bound.port)
    return LdapListener(host=bound.host, port=bound.port, factory=factory, _port=p, _loop=loop)
