"""`pkirepo serve`: one process, one event loop, HTTP with the OCSP and LDAP front-ends,
shut down in order on SIGTERM or SIGINT. With `--workers N`, `supervise()` runs the
supervisor (supervisor.py) and each worker is `serve()` on the sockets it inherited."""
from __future__ import annotations

import asyncio
import logging
import os
import resource
import signal
import socket
import sys
import time
from pathlib import Path

from aiohttp import web

from ldap.listener import install_reactor
from ldap.service import LDAP_LISTENER

from . import sdnotify
from .clock import SystemClock
from .connections import GuardedSite
from .errors import ConfigError
from .ratelimit import RateLimit, suffix
from .root import (CONNECTIONS, PUBLICATION, SERVED, Settings, create_app, load_settings, make_loop_probe,
                   make_runner, open_backend)
from .root import make_leader
from .service import load_signers
from .startup import DeferredStart
from .supervisor import HEARTBEAT_SECONDS, LISTEN_BACKLOG, Supervisor, SupervisorSettings, bind_listeners
from .worker_status import status_path

# How long a worker leaving a rolling restart waits for connections it accepted to send
# their request, and for LDAP clients to end their sessions, before aiohttp's shutdown.
DRAIN_GRACE = 3.0

log = logging.getLogger("pkirepo")


SWITCH_INTERVAL = 0.001


async def serve(settings: Settings, *, http: tuple[str, int], ldap: str | None = None,
                shutdown_timeout: float = 10.0, inherited: dict[str, int] | None = None) -> int:
    """Serve until SIGTERM or SIGINT. `ldap` overrides `[ldap] listen` ("" turns LDAP off).
    `inherited` makes this a worker of `serve --workers`: the descriptors of the listening
    sockets ("http", "ldap") and of the readiness pipe ("ready") it got from the supervisor."""
    # Twisted's asyncio reactor must be this loop before anything imports the reactor.
    install_reactor(asyncio.get_running_loop())
    # The loop shares the interpreter with threads that run Python code (SQLite's row
    # conversion, the signing pool's result handling, name parsing): each time it returns
    # from a system call it may wait a whole switch interval for the lock they hold. The
    # stall watch found it waiting there; 1 ms instead of 5 bounds each of those waits.
    sys.setswitchinterval(SWITCH_INTERVAL)
    if inherited is not None:
        _name_worker_in_logs()
    raise_open_file_limit()
    install_loop_error_log(asyncio.get_running_loop())
    ldap_listen = settings.ldap.listening_on(ldap).listen
    signers = load_signers(settings)  # before listening: a bad key refuses to start
    backend = await open_backend(settings)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    # SIGHUP would end the process: reloading is the supervisor's (serve --workers).
    loop.add_signal_handler(signal.SIGHUP, log.info,
                            "SIGHUP ignored: a rolling restart needs `pkirepo serve --workers N`"
                            if inherited is None else "SIGHUP ignored: the supervisor reloads")
    leader = make_leader(settings, backend, workers=inherited is not None)
    # The database-wide lock (PostgreSQL) is competed for in the background while serving.
    competing = asyncio.create_task(leader.run(), name="pkirepo-leadership") if hasattr(leader, "run") else None
    ldap_fd = inherited.get("ldap") if inherited is not None else None
    runner = None
    watchdog = heartbeat = None
    started = time.monotonic()
    deferred = DeferredStart()
    loop_probe = None
    try:
        loop_probe = make_loop_probe(settings)
        app = create_app(settings, store=backend.store, signers=signers, clock=SystemClock(),
                         presigned=backend.presigned, ldap_listen=ldap_listen, leader=leader, ldap_fd=ldap_fd,
                         loop_probe=loop_probe, deferred=deferred,
                         admin_fd=inherited.get("admin") if inherited is not None else None)
        runner = make_runner(app, settings, shutdown_timeout=shutdown_timeout)
        # Runs the contexts' start-up: the repository's own (issuers, the published files
        # checked) to the end; OCSP's and LDAP's, which load from the whole store, only begin.
        await runner.setup()
        if inherited is not None:
            site = app[CONNECTIONS].site(runner, http[0], http[1], sock=socket.socket(fileno=inherited["http"]),
                                         backlog=LISTEN_BACKLOG)
        else:
            site = app[CONNECTIONS].site(runner, http[0], http[1])
        shown = f"[{http[0]}]" if ":" in http[0] else http[0]
        # A worker shares its sockets with workers already serving: it takes connections only
        # once OCSP and LDAP have started, instead of answering tryLater meanwhile.
        if inherited is not None and not await _until_started(deferred, stop):
            return 0
        try:
            await site.start()
        except OSError as e:
            # A port in use or an address not on this host is the operator's to fix, like
            # the LDAP address: one line naming it, no traceback.
            reason = os.strerror(e.errno) if e.errno else str(e)  # asyncio's own text repeats the address
            raise ConfigError(f"cannot listen for HTTP on {shown}:{http[1]}: {reason}") from e
        log.info("serving HTTP on http://%s:%d/ (CRL index: http://%s:%d/crl/) after %.1f s", shown, http[1],
                 shown, http[1], time.monotonic() - started)
        if inherited is None and not await _until_started(deferred, stop):
            return 0
        log.info("started in %.1f s (%s)", time.monotonic() - started,
                 ", ".join(f"{name} {s:.1f} s" for name, s in deferred.durations.items()) or "nothing deferred")
        if loop_probe is not None and loop_probe.gc is not None:
            loop_probe.gc.settle()
        for line in served_urls(app, settings.http.base_url):
            print(line, flush=True)
        if inherited is not None:
            # The supervisor waits for this before it stops an old worker; the pipe stays
            # open, so that its end tells the supervisor this worker is gone.
            os.write(inherited["ready"], b"ready\n")
            heartbeat = asyncio.create_task(_heartbeat(inherited["ready"], stop), name="pkirepo-heartbeat")
        else:
            # Tests and scripts wait for this line: everything above is listening by now.
            print(f"pkirepo: serving on http://{shown}:{http[1]}/", flush=True)
        sdnotify.notify("READY=1")
        interval = sdnotify.watchdog_interval()
        if interval is not None:
            watchdog = asyncio.create_task(_watchdog(interval), name="pkirepo-watchdog")
        await stop.wait()
        log.info("shutting down")
        sdnotify.notify("STOPPING=1")
        if inherited is not None:
            await drain(app, site, DRAIN_GRACE)
    finally:
        for task in (watchdog, heartbeat):
            if task is not None:
                task.cancel()
        if runner is not None:
            # Stops accepting, drains in-flight requests, then runs the contexts' cleanup.
            await runner.cleanup()
        if competing is not None:
            competing.cancel()
            await asyncio.gather(competing, return_exceptions=True)
        await backend.close()
        if leader is not None:
            leader.release()
        if loop_probe is not None and loop_probe.gc is not None:
            loop_probe.gc.uninstall()
    return 0


async def drain(app: web.Application, site: GuardedSite, grace: float) -> None:
    """A worker's first step out: stop accepting on the shared sockets (the supervisor and
    the other workers keep them open, so nothing queued is lost), then give the connections
    it already accepted up to `grace` seconds to send their request (HTTP) or to end their
    session (LDAP). aiohttp's shutdown then finishes the requests in progress."""
    site.stop_accepting()
    listener = app.get(LDAP_LISTENER)
    waits = [app[CONNECTIONS].settle(grace)]
    if listener is not None:
        waits.append(listener.drain(grace))
    await asyncio.gather(*waits)


def _name_worker_in_logs() -> None:
    # Several workers write to one log: each line says which process wrote it.
    for handler in logging.getLogger().handlers:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s[%(process)d]: %(message)s"))


async def _heartbeat(fd: int, stop: asyncio.Event) -> None:
    # From the event loop itself, so that a stuck loop goes silent and gets replaced.
    os.set_blocking(fd, False)
    while True:
        try:
            os.write(fd, b"alive\n")
        except BlockingIOError:
            pass  # the supervisor is behind reading; the next beat will do
        except BrokenPipeError:
            log.error("the supervisor is gone: stopping")
            stop.set()
            return
        await asyncio.sleep(HEARTBEAT_SECONDS)


async def _watchdog(interval: float) -> None:
    # Fed from the event loop itself: a loop stuck for longer than WatchdogSec gets restarted.
    while True:
        sdnotify.notify("WATCHDOG=1")
        await asyncio.sleep(interval)


async def supervise(settings: Settings, *, config: Path, http: tuple[str, int], ldap: str | None,
                    workers: int, verbose: bool = False) -> int:
    """`pkirepo serve --workers N`: bind the listeners, then run the supervisor."""
    ldap_settings = settings.ldap.listening_on(ldap)
    load_signers(settings)  # a bad key refuses to start before anything listens
    https = bind_listeners(http[0], http[1], what="HTTP", count=workers)
    listeners = [{"http": sock} for sock in https]
    try:
        if ldap_settings.listen:
            host, port = ldap_settings.host_port
            for slot, sock in zip(listeners, bind_listeners(host, port, what="LDAP", count=workers)):
                slot["ldap"] = sock
        if settings.admin.enabled:
            # One socket per worker slot on the admin address, like HTTP: any worker may take
            # an admin request (the store orders the changes and holds the idempotency keys),
            # and each slot's socket stays open while its worker is replaced.
            host, port = settings.admin.listen
            for slot, sock in zip(listeners, bind_listeners(host, port, what="the admin API", count=workers)):
                slot["admin"] = sock
    except BaseException:
        for slot in listeners:
            for sock in slot.values():
                sock.close()
        raise
    http_port = https[0].getsockname()[1]
    shown = f"[{http[0]}]" if ":" in http[0] else http[0]
    config = config.resolve()
    argv = [sys.executable, "-m", "publisher.cli", *(["-v"] if verbose else []), "--config", str(config),
            "serve", "--http", f"{shown}:{http_port}", "--ldap", ldap_settings.listen or ""]
    if settings.admin.enabled:
        admin_host, admin_port = settings.admin.listen
        argv += ["--admin", f"[{admin_host}]:{admin_port}" if ":" in admin_host else f"{admin_host}:{admin_port}"]

    def check() -> None:
        # What a new worker would do first; refused here, the old workers keep serving.
        fresh = load_settings(config)
        load_signers(fresh)
        if fresh.http.listen != settings.http.listen or fresh.ldap.listen != settings.ldap.listen:
            log.warning("listen addresses changed in %s: the sockets stay as they are until a full restart", config)

    def on_ready() -> None:
        log.info("serving HTTP on http://%s:%d/ with %d workers", shown, http_port, workers)
        print(f"pkirepo: serving on http://{shown}:{http_port}/ ({workers} workers)", flush=True)

    status = status_path(settings.store_path)
    supervisor = Supervisor(SupervisorSettings(workers=workers), listeners=listeners,
                            command=lambda: (argv, dict(os.environ)), check=check, status=status,
                            on_ready=on_ready)
    try:
        return await supervisor.run()
    finally:
        status.unlink(missing_ok=True)


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
