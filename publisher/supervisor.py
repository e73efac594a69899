"""`pkirepo serve --workers N`: a supervisor that owns the listening sockets and keeps N
worker processes serving on them (the pre-fork model of gunicorn and nginx).

The supervisor binds HTTP and LDAP once per worker slot, with SO_REUSEPORT, so that the
kernel spreads new connections evenly over the slots (with one shared socket, the worker
that happens to be idle takes most kept-alive connections and the other idles). Each worker
is a fresh `pkirepo serve` process (so a restart picks up new code, config, keys and
certificates) that inherits its slot's sockets and accepts on them; its replacement, or its
successor in a rolling restart, inherits the same ones. The supervisor holds every socket
open while the service runs, so none ever closes: connections queued on a slot whose worker
is restarting wait there for the next, never reset, as they would be if a worker owned and
closed its own SO_REUSEPORT socket.

- A worker writes "ready" on its readiness pipe once it serves, then "alive" every
  `HEARTBEAT_SECONDS` from its event loop; EOF on the pipe means it is gone. A worker
  silent for `heartbeat_timeout` seconds (a stuck event loop) is killed and replaced.
- SIGHUP: rolling restart. The config is checked first (a config that does not load is
  refused, logged, and the old workers keep serving); then, one at a time, a new worker is
  started, awaited until ready, and only then an old one is told to stop (SIGTERM: it stops
  accepting, drains what it holds and exits).
- SIGTERM / SIGINT: every worker drains and exits; then the listeners close.
- A worker that dies is restarted. More than `crash_limit` deaths within `crash_window`
  seconds is a crash loop: logged, written to the status file, restarts backed off, and
  the systemd watchdog is no longer fed.
- systemd: READY=1 once the workers serve, RELOADING=1 / READY=1 around a rolling restart,
  STOPPING=1, WATCHDOG=1 while healthy (see sdnotify.py).

The workers decide among themselves which one runs the background work (leader.py).
"""
from __future__ import annotations

import asyncio
import collections
import logging
import os
import signal
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from . import sdnotify
from .errors import ConfigError, RepoError
from .worker_status import WorkerStatus, write_status

log = logging.getLogger("pkirepo")

# Set in a worker's environment: which inherited descriptors are what ("http=3,ldap=4,ready=7").
WORKER_ENV = "PKIREPO_WORKER"
# How often a worker's event loop says it is alive on the readiness pipe.
HEARTBEAT_SECONDS = 2.0
# The listen queue of the shared sockets: connections wait there while workers restart.
LISTEN_BACKLOG = 1024
# Environment a worker must not inherit: only the supervisor talks to systemd.
_MANAGER_ENV = ("NOTIFY_SOCKET", "WATCHDOG_USEC", "WATCHDOG_PID", "LISTEN_FDS", "LISTEN_PID")


@dataclass(frozen=True)
class SupervisorSettings:
    """How the supervisor runs its workers."""

    workers: int
    # A new worker that does not say "ready" within this long is stopped (a reload is abandoned).
    ready_timeout: float = 120.0
    # A worker told to stop that has not exited after this long is killed.
    stop_timeout: float = 30.0
    # This many deaths within crash_window seconds is a crash loop.
    crash_limit: int = 5
    crash_window: float = 60.0
    max_restart_delay: float = 30.0
    # A serving worker that has not said "alive" for this long is killed and replaced.
    heartbeat_timeout: float = 30.0


def bind_listeners(host: str, port: int, *, what: str, count: int,
                   backlog: int = LISTEN_BACKLOG) -> list[socket.socket]:
    """`count` listening sockets on one address (port 0: the first one's), one per worker
    slot, sharing it with SO_REUSEPORT; ConfigError names the address at fault."""
    socks: list[socket.socket] = []
    try:
        for _ in range(count):
            socks.append(bind_listener(host, port, what=what, backlog=backlog, reuse_port=count > 1))
            port = socks[0].getsockname()[1]
    except BaseException:
        for sock in socks:
            sock.close()
        raise
    return socks


def bind_listener(host: str, port: int, *, what: str, backlog: int = LISTEN_BACKLOG,
                  reuse_port: bool = False) -> socket.socket:
    """A listening TCP socket the workers inherit; ConfigError names the address at fault."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if reuse_port:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        sock.bind((host, port))
        sock.listen(backlog)
    except OSError as e:
        sock.close()
        shown = f"[{host}]" if ":" in host else host
        reason = os.strerror(e.errno) if e.errno else str(e)
        raise ConfigError(f"cannot listen for {what} on {shown}:{port}: {reason}") from e
    sock.set_inheritable(True)
    return sock


def format_worker_env(fds: dict[str, int]) -> str:
    return ",".join(f"{k}={v}" for k, v in fds.items())


def parse_worker_env(text: str) -> dict[str, int]:
    """The descriptors named in $PKIREPO_WORKER; ValueError if it does not parse."""
    out: dict[str, int] = {}
    for part in text.split(","):
        key, sep, value = part.partition("=")
        if not sep or not value.isdigit():
            raise ValueError(f"{WORKER_ENV}={text!r}: expected name=fd pairs")
        out[key] = int(value)
    return out


class Worker:
    """One worker process and what the supervisor knows of it."""

    def __init__(self, proc: asyncio.subprocess.Process, ready_fd: int, number: int,
                 *, slot: int = 0, replacement: bool = False) -> None:
        self.proc = proc
        # Which of the supervisor's listening sockets it accepts on.
        self.slot = slot
        # Started in place of a dead worker: restarted in turn even if it dies while starting
        # (the start-up and a reload handle their own workers' failures).
        self.replacement = replacement
        self.pid = proc.pid
        self.number = number
        self.ready: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
        self.stopping = False
        self.ready_fd = ready_fd
        self.exited: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        self.last_seen = time.monotonic()

    @property
    def serving(self) -> bool:
        return (self.ready.done() and self.ready.result() and not self.stopping
                and not self.exited.done())


def _exit_text(code: int) -> str:
    if code < 0:
        try:
            return f"killed by {signal.Signals(-code).name}"
        except ValueError:
            return f"killed by signal {-code}"
    return f"exit code {code}"


class Supervisor:
    """Runs `settings.workers` workers until SIGTERM/SIGINT, worker slot i on the sockets of
    `listeners[i]` (one dict per slot; fewer dicts than workers: slots share them in turn).

    `command()` gives the argv and environment of a new worker; `check()` raises a
    RepoError when the config would not load (it runs before every rolling restart);
    `status` is the file the workers read the supervisor's state from; `on_ready` runs
    once, when the first workers serve."""

    def __init__(
        self,
        settings: SupervisorSettings,
        *,
        listeners: list[dict[str, socket.socket]],
        command: Callable[[], tuple[list[str], dict[str, str]]],
        check: Callable[[], None],
        status: Path | None = None,
        on_ready: Callable[[], None] = lambda: None,
        env: dict[str, str] | None = None,
    ) -> None:
        self.settings = settings
        self.listeners = listeners
        self.command = command
        self.check = check
        self.status_path = status
        self.on_ready = on_ready
        self.env = dict(os.environ) if env is None else env
        self.workers: list[Worker] = []
        self.deaths: collections.deque[float] = collections.deque()
        self.crash_loop = False
        self.restart_delay = 0.0
        self.reloading = False
        self.stopping = False
        self._numbers = 0
        self._wake = asyncio.Event()
        self._reload_wanted = False
        self._tasks: set[asyncio.Task] = set()

    # -- the main loop ---------------------------------------------------------------------

    async def run(self) -> int:
        """Start the workers, serve until told to stop; returns the exit code."""
        loop = asyncio.get_running_loop()
        loop.add_signal_handler(signal.SIGHUP, self._on_hup)
        loop.add_signal_handler(signal.SIGTERM, self.stop)
        loop.add_signal_handler(signal.SIGINT, self.stop)
        watchdog = None
        try:
            first = [await self._spawn(i, stdout=(i == 0)) for i in range(self.settings.workers)]
            for w in first:
                if not await self._wait_ready(w):
                    code = await self._exit_code(w)
                    log.error("worker %d (pid %d) did not start: %s", w.number, w.pid, _exit_text(code))
                    return code if code > 0 else 1
            self._write_status()
            self.on_ready()
            sdnotify.notify("READY=1", env=self.env)
            interval = sdnotify.watchdog_interval(env=self.env)
            if interval is not None:
                watchdog = asyncio.create_task(self._watchdog(interval), name="pkirepo-watchdog")
            while not self.stopping:
                try:
                    await asyncio.wait_for(self._wake.wait(), 1.0)
                except asyncio.TimeoutError:
                    pass
                self._wake.clear()
                self._expire_deaths()
                self._kill_unresponsive()
                if self._reload_wanted and not self.stopping:
                    self._reload_wanted = False
                    await self._reload()
            return 0
        finally:
            sdnotify.notify("STOPPING=1", env=self.env)
            if watchdog is not None:
                watchdog.cancel()
            await self._stop_all()
            for slot in self.listeners:
                for sock in slot.values():
                    sock.close()
            for sig in (signal.SIGHUP, signal.SIGTERM, signal.SIGINT):
                loop.remove_signal_handler(sig)

    def reload(self) -> None:
        """A rolling restart, as on SIGHUP (one at a time: a request during one is queued)."""
        self._reload_wanted = True
        self._wake.set()

    def stop(self) -> None:
        """Drain the workers and return from `run()`, as on SIGTERM."""
        if not self.stopping:
            log.info("stopping: the workers drain their requests")
        self.stopping = True
        self._wake.set()

    def _on_hup(self) -> None:
        log.info("SIGHUP: rolling restart of the workers")
        self.reload()

    # -- workers ---------------------------------------------------------------------------

    async def _spawn(self, slot: int, *, stdout: bool = False, replacement: bool = False) -> Worker:
        argv, env = self.command()
        env = {k: v for k, v in env.items() if k not in _MANAGER_ENV}
        ready_r, ready_w = os.pipe()
        fds = {name: sock.fileno() for name, sock in self.listeners[slot % len(self.listeners)].items()}
        fds["ready"] = ready_w
        env[WORKER_ENV] = format_worker_env(fds)
        self._numbers += 1
        try:
            proc = await asyncio.create_subprocess_exec(
                *argv, env=env, pass_fds=tuple(fds.values()), stdin=subprocess.DEVNULL,
                stdout=None if stdout else subprocess.DEVNULL,
                # Not in the terminal's process group: a Ctrl-C reaches the supervisor only,
                # which then stops the workers in order.
                process_group=0)
        except BaseException:
            os.close(ready_r)
            raise
        finally:
            os.close(ready_w)
        w = Worker(proc, ready_r, self._numbers, slot=slot, replacement=replacement)
        self.workers.append(w)
        asyncio.get_running_loop().add_reader(ready_r, self._on_ready_pipe, w)
        self._track(asyncio.create_task(self._watch(w), name=f"pkirepo-worker-{w.number}"))
        log.info("worker %d started (pid %d)", w.number, w.pid)
        return w

    def _track(self, task: asyncio.Task) -> None:
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _on_ready_pipe(self, w: Worker) -> None:
        try:
            data = os.read(w.ready_fd, 256)
        except OSError:
            data = b""
        if data:
            w.last_seen = time.monotonic()
        if data and b"ready" in data and not w.ready.done():
            w.ready.set_result(True)
            self._write_status()
        if not data:
            asyncio.get_running_loop().remove_reader(w.ready_fd)
            os.close(w.ready_fd)
            if not w.ready.done():
                w.ready.set_result(False)

    async def _wait_ready(self, w: Worker) -> bool:
        try:
            return await asyncio.wait_for(asyncio.shield(w.ready), self.settings.ready_timeout)
        except asyncio.TimeoutError:
            log.error("worker %d (pid %d) not ready after %.0f s: stopping it", w.number, w.pid,
                      self.settings.ready_timeout)
            await self._terminate(w)
            return False

    async def _exit_code(self, w: Worker) -> int:
        return await asyncio.shield(w.exited)

    async def _watch(self, w: Worker) -> None:
        code = await w.proc.wait()
        w.exited.set_result(code)
        if w in self.workers:
            self.workers.remove(w)
        if w.stopping or self.stopping:
            log.info("worker %d (pid %d) stopped (%s)", w.number, w.pid, _exit_text(code))
            self._write_status()
            return
        if not w.ready.done() and not w.replacement:
            # Dying before it served: the initial start or a reload is waiting on it.
            log.error("worker %d (pid %d) exited before it was ready: %s", w.number, w.pid, _exit_text(code))
            self._note_death()
            return
        log.error("worker %d (pid %d) died: %s; starting another", w.number, w.pid, _exit_text(code))
        self._note_death()
        if self.restart_delay:
            await asyncio.sleep(self.restart_delay)
        if not self.stopping:
            await self._spawn(w.slot, replacement=True)

    def _note_death(self) -> None:
        now = time.monotonic()
        self.deaths.append(now)
        while self.deaths and self.deaths[0] < now - self.settings.crash_window:
            self.deaths.popleft()
        over = len(self.deaths) - self.settings.crash_limit
        was = self.crash_loop
        self.crash_loop = over >= 0
        self.restart_delay = min(self.settings.max_restart_delay, 2.0 ** over) if self.crash_loop else 0.0
        if self.crash_loop:
            log.error("crash loop: %d worker deaths within %.0f s; restarts delayed by %.0f s",
                      len(self.deaths), self.settings.crash_window, self.restart_delay)
        elif was:
            log.info("crash loop over")
        self._write_status()

    def _kill_unresponsive(self) -> None:
        now = time.monotonic()
        for w in self.workers:
            silent = now - w.last_seen
            if w.serving and silent > self.settings.heartbeat_timeout:
                log.error("worker %d (pid %d) unresponsive for %.0f s: killing it", w.number, w.pid, silent)
                w.last_seen = now  # once
                try:
                    w.proc.kill()
                except ProcessLookupError:
                    pass

    def _expire_deaths(self) -> None:
        """A crash loop ends once fewer than crash_limit deaths remain in the window."""
        now = time.monotonic()
        while self.deaths and self.deaths[0] < now - self.settings.crash_window:
            self.deaths.popleft()
        if self.crash_loop and len(self.deaths) < self.settings.crash_limit:
            self.crash_loop = False
            self.restart_delay = 0.0
            log.info("crash loop over: %d worker death(s) within the last %.0f s", len(self.deaths),
                     self.settings.crash_window)
            self._write_status()

    async def _terminate(self, w: Worker) -> None:
        """SIGTERM (drain and exit), then SIGKILL after stop_timeout."""
        w.stopping = True
        if w.exited.done():
            return
        try:
            w.proc.send_signal(signal.SIGTERM)
        except ProcessLookupError:
            pass
        try:
            await asyncio.wait_for(asyncio.shield(w.exited), self.settings.stop_timeout)
        except asyncio.TimeoutError:
            log.error("worker %d (pid %d) still running %.0f s after SIGTERM: killing it",
                      w.number, w.pid, self.settings.stop_timeout)
            try:
                w.proc.kill()
            except ProcessLookupError:
                pass
            await asyncio.shield(w.exited)

    async def _stop_all(self) -> None:
        # A restart may have been starting a worker as the stop came: look again.
        for _ in range(5):
            workers = [w for w in self.workers if not w.exited.done()]
            if not workers:
                break
            await asyncio.gather(*(self._terminate(w) for w in workers), return_exceptions=True)
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    # -- rolling restart -------------------------------------------------------------------

    async def _reload(self) -> None:
        sdnotify.reloading(env=self.env)
        self.reloading = True
        self._write_status()
        try:
            try:
                await asyncio.to_thread(self.check)
            except RepoError as e:
                log.error("reload refused, the workers keep serving with the previous config: %s", e.message)
                return
            except Exception as e:  # a fault in the check itself must not stop the service
                log.exception("reload refused, the workers keep serving: %s", e)
                return
            old = [w for w in self.workers if not w.stopping]
            for i, w in enumerate(old):
                if self.stopping:
                    return
                if w.exited.done():
                    continue  # died meanwhile; its replacement already runs the new code
                new = await self._spawn(w.slot)
                if not await self._wait_ready(new):
                    log.error("reload stopped: a new worker did not become ready; %d old worker(s) keep serving",
                              len(old) - i)
                    await self._terminate(new)
                    return
                await self._terminate(w)
            log.info("rolling restart done: %d worker(s) serving", sum(w.serving for w in self.workers))
        finally:
            self.reloading = False
            self._write_status()
            if not self.stopping:
                sdnotify.notify("READY=1", env=self.env)

    # -- health ----------------------------------------------------------------------------

    @property
    def healthy(self) -> bool:
        return not self.crash_loop and any(w.serving for w in self.workers)

    async def _watchdog(self, interval: float) -> None:
        while True:
            if self.healthy:
                sdnotify.notify("WATCHDOG=1", env=self.env)
            await asyncio.sleep(interval)

    def _write_status(self) -> None:
        if self.status_path is None:
            return
        ready = sum(w.serving for w in self.workers)
        status = WorkerStatus(
            pid=os.getpid(), workers=self.settings.workers, ready=ready, crash_loop=self.crash_loop,
            restart_delay=self.restart_delay, reloading=self.reloading,
            problem=f"{len(self.deaths)} deaths in {self.settings.crash_window:.0f} s" if self.crash_loop else "")
        try:
            write_status(self.status_path, status)
        except OSError as e:
            log.warning("cannot write the worker status file %s: %s", self.status_path, e.strerror)
