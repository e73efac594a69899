"""The audit trail over the store: the `AuditSink` the composition root hands to the service
layer (and the admin API), the signed checkpoints, retention pruning, and the check that
`pkirepo audit verify` runs. Store and clock are passed in."""
from __future__ import annotations

import asyncio
import datetime as dt
import functools
import json
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import AsyncIterator, Callable, Mapping

from . import audit
from .actor import Actor, AuditSink
from .clock import Clock
from .files import atomic_write
from .maintenance import SCHEDULED, WEEK
from .errors import ConfigError, RepoError
from .store import Store

log = logging.getLogger("pkirepo.audit")

#: After these the head is signed at once: a CRL issued is the moment the CP wants vouched for.
CHECKPOINT_AFTER = frozenset({"crl-issue", "crl-add"})
PAGE = 1000


def _clean(text: str, limit: int = 4000) -> str:
    # A database may refuse NUL and unpaired surrogates; a client certificate's subject or a
    # refusal's message can hold anything. What is stored is what is hashed.
    text = text.encode("utf-8", "replace").decode("utf-8").replace("\x00", "\ufffd")
    return text if len(text) <= limit else text[:limit] + "…"


async def audited(sink: AuditSink, actor: Actor, action: str, obj: str, work, *,
                  detail: Mapping[str, object] | None = None, done=None):
    """Run one change (the awaitable `work`) and put it on record with its actor: "ok" with
    the object it made (`done(result)` gives the object and more detail), or the refusal
    and its reason. The record follows the change's own transaction: a store that takes the
    change but not its record fails the call, so the caller never takes it for recorded."""
    try:
        result = await work
    except RepoError as e:
        await record_failure(sink, actor, action, obj, audit.refusal(e), detail)
        e.audited = True  # type: ignore[attr-defined]  # an outer call records it no second time
        raise
    except Exception as e:
        await record_failure(sink, actor, action, obj, f"failed: internal error ({type(e).__name__})", detail)
        raise
    if done is not None:
        obj, more = done(result)
        detail = {**(detail or {}), **more}
    await sink.record(actor, action, obj, "ok", detail)
    return result


async def record_failure(sink: AuditSink, actor: Actor, action: str, obj: str, result: str,
                         detail: Mapping[str, object] | None) -> None:
    """Put a refusal on record; a trail that cannot take it is logged, and the refusal
    itself is what the caller sees."""
    await try_record(sink, actor, action, obj, result, detail)


async def try_record(sink: AuditSink, actor: Actor, action: str, obj: str, result: str,
                     detail: Mapping[str, object] | None = None) -> bool:
    """Record an event that changes nothing itself (a start, a refusal): a store that cannot
    take it right now is logged as an error rather than stopping what goes on (serving
    reads). Returns whether it was recorded."""
    try:
        await sink.record(actor, action, obj, result, detail)
    except Exception as e:  # noqa: BLE001
        log.error("audit: could not record %s %s (%s): %s", action, obj, result,
                  getattr(e, "message", None) or f"{type(e).__name__}: {e}")
        return False
    return True


class AuditTrail:
    """Appends every event to the store's chain; with `key`, signs checkpoints of the head
    (stored, and written to `checkpoint_file`). `previous`: the public keys of the
    checkpoint keys `key` replaced (`audit.checkpoint_previous_keys`)."""

    def __init__(self, store: Store, clock: Clock, *, key=None, previous=(),
                 checkpoint_file: Path | None = None) -> None:
        self.store = store
        self.clock = clock
        self.key = key
        self.key_id = None if key is None else audit.key_id(key.public_key())
        self.previous_ids = frozenset(audit.key_id(k) for k in previous)
        self.checkpoint_file = checkpoint_file

    async def record(self, actor: Actor, action: str, obj: str, result: str,
                     detail: Mapping[str, object] | None = None) -> None:
        try:
            text = audit.detail_text(detail)
        except ValueError as e:
            text = audit.detail_text({"unrecordable_detail": str(e)})
        entry = audit.Entry(self.clock.now().replace(microsecond=0), _clean(actor.kind, 100), _clean(actor.name),
                            None if actor.source is None else _clean(actor.source, 200), _clean(action, 100),
                            _clean(obj), _clean(result), text)
        await self.store.append_audit(entry)
        if action in CHECKPOINT_AFTER and result == "ok" and self.key is not None:
            try:
                await self.checkpoint()
            except ConfigError as e:
                # The change and its record stand; only the checkpoint after it waits for
                # the config to be mended (the checkpoint loop and `audit checkpoint` retry).
                log.error("%s", e.message)

    async def checkpoint(self) -> audit.Checkpoint | None:
        """Sign the head as it is now, store the checkpoint and write the file; None when
        the trail is empty or no key is configured."""
        if self.key is None:
            return None
        _, hi, _ = await self.store.audit_bounds()
        if hi == 0:
            return None
        latest = await self.store.audit_checkpoints(limit=1)
        if latest and latest[0].key_id != self.key_id:
            await self._rotated_from(latest[0])
            _, hi, _ = await self.store.audit_bounds()
        head = (await self.store.audit_records(after_seq=hi - 1, limit=1))[0]
        cp = audit.sign_checkpoint(self.key, head.seq, head.hash, self.clock.now())
        await self.store.add_audit_checkpoint(cp)
        if self.checkpoint_file is not None:
            data = json.dumps(cp.json(), indent=1).encode() + b"\n"
            await asyncio.to_thread(functools.partial(atomic_write, self.checkpoint_file, data, crash_point=None))
        return cp

    async def _rotated_from(self, latest: audit.Checkpoint) -> None:
        """The newest checkpoint is another key's: put the rotation on record, under the
        new key's first checkpoint, if that key is the one this key replaced. Any other key
        is newer than this process's config (a node or worker not yet restarted after a
        rotation) or a retired key left out of the config: signing now would put a
        retired key after its successor, which `audit verify` reports as tampering."""
        if latest.key_id not in self.previous_ids:
            raise ConfigError(
                f"audit checkpoint not signed: the newest checkpoint (record {latest.seq}) is signed by key id "
                f"{latest.key_id[:16]}…, which is neither audit.checkpoint_key nor in "
                f"audit.checkpoint_previous_keys. After a rotation, list the retired key's public half there "
                f"(openssl pkey -in OLD.key -pubout); a process started before the rotation must be restarted")
        await self.record(Actor("system", "checkpoint"), "audit-key-rotated", "audit checkpoint key", "ok",
                          {"previous_key_id": latest.key_id, "key_id": self.key_id})

    async def checkpoint_if_moved(self) -> audit.Checkpoint | None:
        """A checkpoint when records were added since the newest one, or when it is
        another key's (a rotation: the new key signs at once)."""
        latest = await self.store.audit_checkpoints(limit=1)
        _, hi, _ = await self.store.audit_bounds()
        if latest and latest[0].seq == hi and latest[0].key_id == self.key_id:
            return None
        return await self.checkpoint()

    async def prune(self, retention: dt.timedelta) -> int:
        """Delete records past the retention (up to a checkpoint); the pruning is recorded."""
        n = await self.store.prune_audit(self.clock.now() - retention)
        if n:
            lo, _, _ = await self.store.audit_bounds()
            await self.record(Actor("system", "retention"), "audit-prune", f"audit records before {lo}", "ok",
                              {"pruned": n, "retention_days": retention.days})
        return n


async def checkpoint_loop(trail: AuditTrail, interval: dt.timedelta, retention: dt.timedelta, *,
                          leading: Callable[[], bool] | None = None) -> None:
    """While serving: sign the head every `interval` when it moved, and prune past the
    retention once a day; only the leader when several workers share the store. Errors
    are logged and the next round retries."""
    last_prune: dt.date | None = None
    while True:
        try:
            if leading is None or leading():
                await trail.checkpoint_if_moved()
                today = trail.clock.now().date()
                if last_prune != today:
                    await trail.prune(retention)
                    last_prune = today
        except asyncio.CancelledError:
            raise
        except Exception as e:  # noqa: BLE001 - logged; the next round retries
            log.error("audit checkpoint: %s", getattr(e, "message", None) or f"{type(e).__name__}: {e}")
        await asyncio.sleep(interval.total_seconds())


class WindowWatch:
    """A scheduled maintenance window starts and ends by the clock, not by a command: the
    leader puts each start and end on record as it sees it pass (commands record
    themselves). Every process follows what has passed, so a new leader records no window
    twice; what passed while no server ran is not recorded."""

    ACTOR = Actor("system", "schedule")

    def __init__(self, trail: AuditTrail) -> None:
        self.trail = trail
        self._seen: set[tuple[int, str]] | None = None

    async def step(self, *, leading: bool = True) -> int:
        """One look at the windows; returns how many starts and ends it recorded."""
        now = self.trail.clock.now()
        windows = {w.id: w for w in await self.trail.store.maintenance_windows(since=now - WEEK)
                   if w.kind == SCHEDULED and w.counts}
        passed = {(w.id, "start") for w in windows.values() if w.start <= now}
        passed |= {(w.id, "end") for w in windows.values() if w.end is not None and w.end <= now}
        new = sorted(passed - self._seen) if self._seen is not None and leading else []
        for window_id, what in new:
            w = windows[window_id]
            await self.trail.record(self.ACTOR, f"maintenance-window-{what}", f"maintenance window {window_id}", "ok",
                                    {"start": w.start.isoformat(), "end": None if w.end is None else w.end.isoformat(),
                                     "reason": w.reason})
        self._seen = passed if self._seen is None else self._seen | passed
        return len(new)


async def window_loop(trail: AuditTrail, *, interval: float = 5.0,
                      leading: Callable[[], bool] | None = None) -> None:
    """`WindowWatch` every `interval` seconds while serving; errors are logged and the next
    round retries."""
    watch = WindowWatch(trail)
    while True:
        try:
            await watch.step(leading=leading is None or leading())
        except asyncio.CancelledError:
            raise
        except Exception as e:  # noqa: BLE001
            log.error("audit of maintenance windows: %s", getattr(e, "message", None) or f"{type(e).__name__}: {e}")
        await asyncio.sleep(interval)


# Verification


@dataclass
class Verdict:
    """What `audit verify` found: `problems` mean tampering; `notes` are what could not be
    checked (no key configured, no checkpoint file)."""

    records: int = 0
    first: int = 0
    last: int = 0
    checkpoints: int = 0
    problems: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


async def _record_at(store: Store, seq: int) -> audit.Record | None:
    page = await store.audit_records(after_seq=seq - 1, limit=1)
    return page[0] if page and page[0].seq == seq else None


async def verify_trail(store: Store, *, keys: audit.CheckpointKeys | None = None,
                       published: audit.Checkpoint | None = None,
                       published_source: str = "the checkpoint file",
                       progress: Callable[[int, int], object] | None = None) -> Verdict:
    """Check the whole chain page by page, every stored checkpoint's signature and head, and
    the trail against the last published checkpoint (truncation of the newest records).
    `keys`: the current checkpoint key and the retired ones; none: signatures unchecked."""
    v = Verdict()
    # Checkpoints first, then the bounds: a server appending meanwhile only adds records
    # after those the checkpoints read vouch for, never makes one look cut off.
    checkpoints = await store.audit_checkpoints()
    lo, hi, pruned = await store.audit_bounds()
    v.first, v.last = lo, hi
    v.checkpoints = len(checkpoints)
    start = (0, audit.GENESIS)
    if pruned is not None:
        start = pruned
        if lo and lo != pruned[0] + 1:
            v.problems.append(f"record {pruned[0] + 1}: gap: the oldest kept record is {lo}, but records were "
                              f"pruned only up to {pruned[0]}")
        anchor = [c for c in checkpoints if c.seq == pruned[0] and c.head == pruned[1]]
        if not anchor:
            v.problems.append(f"record {pruned[0] + 1}: no checkpoint vouches for record {pruned[0]}, which the "
                              f"oldest records were pruned up to")
    elif lo > 1:
        v.problems.append(f"record 1: gap: the trail starts at record {lo} and nothing was pruned")
    check = audit.ChainCheck(start)
    after = 0
    while not v.problems:
        page = await store.audit_records(after_seq=after, limit=PAGE)
        for rec in page:
            problem = check.add(rec)
            if problem is not None:
                v.problems.append(problem)
                break
        if not page or v.problems:
            break
        after = page[-1].seq
        if progress is not None:
            progress(after - lo + 1, hi - lo + 1)
    v.records = check.count
    if not keys:
        v.notes.append("no audit.checkpoint_key configured: checkpoint signatures not checked")
    newest: tuple[int, str] | None = None  # the newest key's rank seen so far, and where
    # Checkpoints by a key not given, by key id: named once each, not once per checkpoint
    # (a retired key left out of the config signed hundreds).
    unknown: dict[str, list[tuple[str, audit.Checkpoint]]] = {}
    for i, cp in enumerate(checkpoints, 1):
        what = f"checkpoint {i} (record {cp.seq}, {cp.at.isoformat()})"
        if keys:
            rank = keys.rank(cp)
            if rank is None:
                unknown.setdefault(cp.key_id, []).append((what, cp))
                continue
            problem = keys.problem(cp)
            if problem is not None:
                v.problems.append(f"{what}: {problem}")
                continue
            if newest is not None and rank > newest[0]:
                v.problems.append(f"{what}: signed by a retired checkpoint key (key id {cp.key_id[:16]}…) after "
                                  f"{newest[1]} was signed by a newer one")
                continue
            if newest is None or rank < newest[0]:
                newest = (rank, f"checkpoint {i}")
        v.problems.extend(await _against(store, cp, what, lo, hi))
    for signed in unknown.values():
        (first, cp), (last, _) = signed[0], signed[-1]
        where = first if len(signed) == 1 else f"{first} and {len(signed) - 1} more up to {last}"
        v.problems.append(f"{where}: {keys.problem(cp)}")
    if published is None:
        v.notes.append("no published checkpoint given: truncation of the newest records not checked")
    else:
        what = f"{published_source} (record {published.seq}, {published.at.isoformat()})"
        if keys and (problem := keys.problem(published)) is not None:
            v.problems.append(f"{what}: {problem}")
        else:
            v.problems.extend(await _against(store, published, what, lo, hi))
    return v


async def _against(store: Store, cp: audit.Checkpoint, what: str, lo: int, hi: int) -> list[str]:
    """How the trail contradicts a (valid) checkpoint."""
    if cp.seq > hi:
        return [f"{what}: truncated: the trail ends at record {hi}, but this checkpoint vouches for record {cp.seq}"]
    if cp.seq < lo or cp.seq == 0:
        return []  # pruned past the retention
    rec = await _record_at(store, cp.seq)
    if rec is None:
        return [f"{what}: record {cp.seq} is missing"]
    if rec.hash != cp.head:
        return [f"{what}: record {cp.seq} is not the record this checkpoint vouches for (its hash differs): "
                f"the newest records were replaced"]
    return []


async def records_between(store: Store, *, since: dt.datetime | None, until: dt.datetime | None
                          ) -> AsyncIterator[audit.Record]:
    """Every record in the time range, page by page (exports of years stay in bounded memory)."""
    after = 0
    while True:
        page = await store.audit_records(after_seq=after, since=since, until=until, limit=PAGE)
        for rec in page:
            yield rec
        if len(page) < PAGE:
            return
        after = page[-1].seq


class TrailReader:
    """The audit trail as the admin API's auditor role reads it: a page of records from a
    time on, as the JSON objects `audit export` writes."""

    def __init__(self, store: Store) -> None:
        self.store = store

    async def audit_since(self, since: dt.datetime, *, limit: int) -> list[dict]:
        return [rec.json() for rec in await self.store.audit_records(since=since, limit=limit)]
