"""`pkirepo serve`: one process, one event loop, HTTP with the OCSP and LDAP front-ends,
shut down in order on SIGTERM or SIGINT."""
from __future__ import annotations

import asyncio
import logging
import os
import resource
import signal
import time

from aiohttp import web

from ldap.listener import install_reactor

from .clock import SystemClock
from .errors import ConfigError
from .ratelimit import RateLimit, suffix
from .root import CONNECTIONS, PUBLICATION, SERVED, Settings, create_app, make_loop_probe, make_runner, open_backend
from .service import load_signers
from .startup import DeferredStart

log = logging.getLogger("pkirepo")


async def serve(settings: Settings, *, http: tuple[str, int], ldap: str | None = None,
                shutdown_timeout: float = 10.0) -> int:
    """Serve until SIGTERM or SIGINT. `ldap` overrides `[ldap] listen` ("" turns LDAP off)."""
    # Twisted's asyncio reactor must be this loop before anything imports the reactor.
    install_reactor(asyncio.get_running_loop())
    raise_open_file_limit()
    install_loop_error_log(asyncio.get_running_loop())
    ldap_listen = settings.ldap.listening_on(ldap).listen
    signers = load_signers(settings)  # before listening: a bad key refuses to start
    backend = await open_backend(settings)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    runner = None
    started = time.monotonic()
    deferred = DeferredStart()
    try:
        app = create_app(settings, store=backend.store, signers=signers, clock=SystemClock(),
                         presigned=backend.presigned, ldap_listen=ldap_listen,
                         loop_probe=make_loop_probe(settings), deferred=deferred)
        runner = make_runner(app, settings, shutdown_timeout=shutdown_timeout)
        # Runs the contexts' start-up: the repository's own (issuers, the published files
        # checked) to the end; OCSP's and LDAP's, which load from the whole store, only begin.
        await runner.setup()
        site = app[CONNECTIONS].site(runner, http[0], http[1])
        shown = f"[{http[0]}]" if ":" in http[0] else http[0]
        try:
            await site.start()
        except OSError as e:
            # A port in use or an address not on this host is the operator's to fix, like
            # the LDAP address: one line naming it, no traceback.
            reason = os.strerror(e.errno) if e.errno else str(e)  # asyncio's own text repeats the address
            raise ConfigError(f"cannot listen for HTTP on {shown}:{http[1]}: {reason}") from e
        log.info("serving HTTP on http://%s:%d/ (CRL index: http://%s:%d/crl/) after %.1f s", shown, http[1],
                 shown, http[1], time.monotonic() - started)
        if not await _until_started(deferred, stop):
            return 0
        log.info("started in %.1f s (%s)", time.monotonic() - started,
                 ", ".join(f"{name} {s:.1f} s" for name, s in deferred.durations.items()) or "nothing deferred")
        for line in served_urls(app, settings.http.base_url):
            print(line, flush=True)
        # Tests and scripts wait for this line: everything above is listening by now.
        print(f"pkirepo: serving on http://{shown}:{http[1]}/", flush=True)
        await stop.wait()
        log.info("shutting down")
    finally:
        if runner is not None:
            # Stops accepting, drains in-flight requests, then runs the contexts' cleanup.
            await runner.cleanup()
        await backend.close()
    return 0


async def _until_started(deferred: DeferredStart, stop: asyncio.Event) -> bool:
    """Wait for the deferred start-ups (their error, if any, is raised) or a stop signal
    (False)."""
    waiter = asyncio.ensure_future(deferred.wait())
    stopper = asyncio.ensure_future(stop.wait())
    try:
        await asyncio.wait({waiter, stopper}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        stopper.cancel()
        if not waiter.done():
            waiter.cancel()
    if waiter.done() and not waiter.cancelled():
        waiter.result()
        return True
    log.info("shutting down before start-up finished")
    return False


def raise_open_file_limit() -> None:
    """Raise the soft limit on open files to the hard one: every HTTP and LDAP connection
    holds a descriptor, and the usual soft limit (1024) is below what the connection caps
    allow together."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != hard:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
        except (ValueError, OSError) as e:
            log.warning("cannot raise the open-file limit from %s to %s: %s", soft, hard, e)
            return
    log.info("open-file limit: %s", resource.getrlimit(resource.RLIMIT_NOFILE)[0])


def install_loop_error_log(loop: asyncio.AbstractEventLoop) -> None:
    """Errors the event loop reports (accept() out of file descriptors, mostly) repeat as
    fast as the loop turns: log them at a bounded rate, with a count of those held back."""
    limit = RateLimit(rate=0.2, burst=3, clock=time.monotonic)

    def handler(loop: asyncio.AbstractEventLoop, context: dict) -> None:
        dropped = limit.allow()
        if dropped is None:
            return
        exc = context.get("exception")
        message = context.get("message", "event loop error")
        if isinstance(exc, OSError):
            # Resource errors: the message and errno say everything, a traceback nothing.
            log.error("%s: %s%s", message, exc, suffix(dropped))
        else:
            log.error("%s%s", message, suffix(dropped), exc_info=exc)

    loop.set_exception_handler(handler)


def served_urls(app: web.Application, base: str) -> list[str]:
    """What this process serves, for the operator starting it: each front-end's lines, with
    the CRLs published at start after the index line."""
    lines = list(app[SERVED])
    crls = [f"CRL:          {base}/crl/{name}.crl" for name in sorted(app[PUBLICATION].crls)]
    return lines[:1] + crls + lines[1:]
