"""Change notification across nodes sharing one PostgreSQL store: LISTEN on a dedicated
connection, with the change log as the safety net.

Every change transaction of `PgStore` sends `pg_notify('pkirepo_changes', <change id>)`;
the server delivers it only when the transaction commits. `ChangeListener` holds one
connection of its own (never a pool connection: a pool would hand it to a query, and a
listener's callbacks run between other statements) that LISTENs and turns each
notification into a new `version()` and a wake-up of whoever waits in `wait()`: the OCSP
change follower, the LDAP directory refresh and the publication loop.

A notification can be missed: while the connection is down nothing is delivered, and a
node partitioned from the server hears nothing at all. So on every (re)connection, once
LISTEN is in place, the version moves anyway (the followers then read the change log from
where they are), and every `poll_interval` seconds the listener reads the newest change id
on the same connection and moves the version when it grew. Followers never lose a change;
a missed notification only costs them up to `poll_interval`.

While the server is unreachable the version stays where it was: the followers keep
serving what they hold (cached and pre-signed OCSP answers, the LDAP entries, the CRLs in
memory and on disk) instead of failing every request on a store that cannot answer, and
catch up when the listener is back. Readiness reports the store down meanwhile.
"""
from __future__ import annotations

import asyncio
import logging


log = logging.getLogger("pkirepo")

CHANNEL = "pkirepo_changes"


class ChangeListener:
    """One process's listener. `connect` opens a new asyncpg connection (with the store's
    URL, password and connect timeout); started by `start()`, stopped by `close()`."""

    def __init__(self, connect, *, where: str, poll_interval: float = 1.0) -> None:
        self._connect = connect
        self.where = where
        self.poll_interval = poll_interval
        self._version = 0
        self._latest = 0  # the newest change id heard of or read
        self._changed = asyncio.Event()
        self._task: asyncio.Task | None = None
        self.connected = False
        self.notifications = 0  # received, for tests and figures

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._run(), name="pkirepo-pg-listen")

    def version(self) -> int:
        """Moves whenever a change may have been committed (ChangeProbe)."""
        return self._version

    def _bump(self) -> None:
        self._version += 1
        changed, self._changed = self._changed, asyncio.Event()
        changed.set()

    async def wait(self, timeout: float) -> None:
        """Return at the next change, or after `timeout` seconds."""
        changed = self._changed
        try:
            await asyncio.wait_for(changed.wait(), timeout)
        except asyncio.TimeoutError:
            pass

    def _heard(self, _conn, _pid, _channel, payload: str) -> None:
        self.notifications += 1
        try:
            self._latest = max(self._latest, int(payload))
        except ValueError:
            pass  # not ours to parse: a change all the same
        self._bump()

    async def _run(self) -> None:
        failures = 0
        while True:
            conn = None
            try:
                conn = await self._connect()
                await conn.add_listener(CHANNEL, self._heard)
                self._latest = max(self._latest, await conn.fetchval("SELECT coalesce(max(id), 0) FROM events"))
                self.connected = True
                if failures:
                    log.info("change notification from %s restored", self.where)
                failures = 0
                # Anything committed while no notification could arrive is read now.
                self._bump()
                while True:
                    await asyncio.sleep(self.poll_interval)
                    latest = await asyncio.wait_for(
                        conn.fetchval("SELECT coalesce(max(id), 0) FROM events"), max(self.poll_interval * 5, 5.0))
                    if latest > self._latest:
                        self._latest = latest
                        self._bump()
            except asyncio.CancelledError:
                raise
            except Exception as e:  # noqa: BLE001 - any failure: reconnect after a pause
                self.connected = False
                if failures == 0:
                    log.warning("change notification from %s lost (%s: %s); reconnecting, the followers keep "
                                "what they hold meanwhile", self.where, type(e).__name__, e)
                failures += 1
            finally:
                self.connected = False
                if conn is not None:
                    conn.terminate()
            # Tried again every poll interval: until the listener is back, the OCSP answers
            # follow no change, so it must come back as soon as the server does (a refused
            # connection costs nothing; an unanswered one waits out the connect timeout).
            await asyncio.sleep(self.poll_interval)

    async def close(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            try:
                await task
            except asyncio.CancelledError:
                pass

    def probe(self) -> "ListenerProbe":
        return ListenerProbe(self)


class ListenerProbe:
    """`ChangeProbe` over the process's listener; closing it leaves the listener to the store."""

    def __init__(self, listener: ChangeListener) -> None:
        self._listener = listener

    def version(self) -> int:
        return self._listener.version()

    def close(self) -> None:
        pass
