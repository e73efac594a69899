"""One publisher at a time across the nodes sharing one PostgreSQL store: the holder of a
session advisory lock, taken on a connection of its own.

Why a session lock rather than a lease row: the server releases it the moment it sees the
holder's session end, so a publisher that dies (SIGKILL, a crash, a reboot that closes its
sockets) is replaced within one try of another node (about a second), not after a lease
expires; and nothing is written every second. What a lease would give, a bound when the
holder's host vanishes without closing its connection, comes from TCP keepalives the
session asks of the server (`tcp_keepalives_*`, tcp_user_timeout): the server drops such
a session within about two thirds of `store.leader_timeout` (a few seconds at least), and
the lock with it.

The holder checks its connection every `interval` (at most a second) with a bounded
query, and counts itself the leader only while the last successful check is less than
half of `leader_timeout` old: a node cut off from the server stops publishing before the
server can have let another node take the lock. The scheduler asks `try_acquire()` before
each CRL; the database fences the rest, since CRL numbers are checked and recorded under
the store's write lock (a number not above the latest is refused), so two nodes that both
believe they lead still never publish the same number or a lower one.

Within one node, the workers of `serve --workers` first decide among themselves with the
node's file lock (leader.py): only its holder competes for the database lock, and only it
writes the node's publication directory, which the other nodes' holders keep in step with
the store for their own directories.
"""
from __future__ import annotations

import asyncio
import logging
import os
import time

from .leader import Leadership

log = logging.getLogger("pkirepo")

# The publisher's lock (pg_try_advisory_lock key): "pkirepo" and 2, beside the store's
# write lock ("pkirepo" and 1, pg_store.WRITE_LOCK).
LEADER_LOCK = 0x706B6972_65706F02


class DatabaseLeadership:
    """This process's claim to the publication of a shared store. `connect` opens a new
    asyncpg connection; `local` is the node's file lock (None: no other process of this
    node competes). `workers`: this process is a worker of `serve --workers`."""

    def __init__(self, connect, *, where: str, timeout: float, local: Leadership | None,
                 workers: bool = False) -> None:
        self._connect = connect
        self.where = where
        self.timeout = timeout
        self.local = local
        self.workers = workers
        self.interval = min(1.0, timeout / 4)
        self._held = False
        self._confirmed = 0.0
        self._warned_stale = False
        self.acquired_at: float | None = None  # time.time() of the last acquisition, for figures
        self.tries = 0  # attempts at the lock that the server answered

    def owns_directory(self) -> bool:
        """True if this process keeps the node's publication directory in step."""
        return self.local is None or self.local.try_acquire()

    def try_acquire(self) -> bool:
        """True while this process holds the database lock and last confirmed it recently
        enough; never blocks (the lock is taken in `run()`)."""
        if not self._held:
            return False
        if time.monotonic() - self._confirmed > self.timeout / 2:
            if not self._warned_stale:
                log.error("publication paused: the leadership connection to %s has not answered for %.1f s",
                          self.where, time.monotonic() - self._confirmed)
                self._warned_stale = True
            return False
        return True

    @property
    def held(self) -> bool:
        return self.try_acquire()

    def _keepalive_settings(self) -> list[str]:
        t = self.timeout
        idle, interval = max(1, int(t / 3)), max(1, int(t / 9))
        return [f"SET tcp_keepalives_idle = {idle}", f"SET tcp_keepalives_interval = {interval}",
                "SET tcp_keepalives_count = 3", f"SET tcp_user_timeout = {max(1000, int(t * 500))}"]

    async def run(self) -> None:
        """Compete for the lock, then hold it and keep confirming it, until cancelled."""
        failures = 0
        while True:
            if not self.owns_directory():
                await asyncio.sleep(self.interval)
                continue
            conn = None
            try:
                conn = await self._connect()
                for statement in self._keepalive_settings():
                    await conn.execute(statement)
                while True:
                    got = await asyncio.wait_for(conn.fetchval("SELECT pg_try_advisory_lock($1)", LEADER_LOCK),
                                                 self.timeout)
                    self.tries += 1
                    if got:
                        break
                    failures = 0
                    await asyncio.sleep(self.interval)
                self._confirmed = time.monotonic()
                self._held = True
                self._warned_stale = False
                self.acquired_at = time.time()
                log.info("this node (pid %d) now publishes for %s (CRLs, schedule, pre-signing, pruning)",
                         os.getpid(), self.where)
                while True:
                    await asyncio.sleep(self.interval)
                    # A slow answer (a loaded server) pauses publication once it is older than
                    # half the timeout (try_acquire), without giving the lock up; no answer
                    # within the whole timeout gives it up (the server will have dropped the
                    # session by then, or will shortly).
                    await asyncio.wait_for(conn.fetchval("SELECT 1"), self.timeout)
                    self._confirmed = time.monotonic()
                    if self._warned_stale:
                        log.info("publication resumes: the leadership connection to %s answers again", self.where)
                        self._warned_stale = False
            except asyncio.CancelledError:
                raise
            except Exception as e:  # noqa: BLE001 - any failure: give up the lock, try again
                if self._held:
                    log.error("publication stops on this node: the leadership connection to %s failed (%s: %s)",
                              self.where, type(e).__name__, e)
                elif failures == 0:
                    log.warning("cannot compete for publication on %s (%s: %s); trying again",
                                self.where, type(e).__name__, e)
                failures += 1
            finally:
                self._held = False
                if conn is not None:
                    # The server ends the session at once, and the lock with it.
                    conn.terminate()
            await asyncio.sleep(self.interval)

    def release(self) -> None:
        """At shutdown (after `run()` was cancelled, which closed the connection)."""
        self._held = False
        if self.local is not None:
            self.local.release()
