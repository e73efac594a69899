"""Subscriber entries served from the store, next to a snapshot of everything else.

A million subscriber entries do not fit in a snapshot rebuilt on every change (memory grows
with the store, and a rebuild holds the loop), so the directory is two tiers:

- a `Directory` snapshot of the small part of the tree (containers, CA entries, CRL
  distribution points), rebuilt when a CRL, a CA or a document changes;
- the entries `uid=<SERIAL HEX>,<CA entry>` of each CA that publishes its subscribers, read
  from the store when a search reaches them: by DN (issuer and serial), by `uid`, and by
  `cn`, `sn` and `mail` equality through the store's name index (`ldap.names`); any other
  search over a CA's subscribers pages through its certificates in serial order, a page per
  store read, with the search paused (`directory.Wait`) while a page is read.  The server's
  size, time and slice limits bound that work as they bound any search.

`StoreDirectory` answers `candidates` in the same order as a `Directory` built whole from
the same store would (tests/ldap/test_ldap_subscribers.py checks it).  Entries read by DN or
through the name index are kept in a bounded LRU cache (`EntryCache`); `ldap.service`
drops a certificate's entry when the change log says its status changed.
"""
from __future__ import annotations

import asyncio
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any, Awaitable, Generator, Iterator, Sequence

from publisher.errors import MalformedInput, Unavailable
from publisher.store import CertRecord, Store, serial_hex

from . import dn as dnmod
from .build import SUBSCRIBER_CLASSES, SUBSCRIBER_KEYS, published, subscriber_entry
from .directory import SCOPE_BASE, SCOPE_ONE, Directory, Entry, NoSuchObject, Wait
from .filters import IndexHint
from .names import INDEXED

# Certificates read per store query when a search pages through a CA's subscribers.  Each
# page returns to the loop while it is read, and making a page's entries (parsing each
# certificate) is most of a slice's work: small pages keep slices short.
PAGE = 64
_CLASSES = frozenset(c.casefold() for c in SUBSCRIBER_CLASSES)


class EntryCache:
    """Subscriber entries by (issuer id, serial), least recently used first out.

    Only published entries are kept.  `epoch` moves with every drop: an entry read from the
    store before a change was applied is not put back afterwards (`put` with an old epoch).
    """

    def __init__(self, max_entries: int = 10_000) -> None:
        self._d: OrderedDict[tuple[int, int], Entry] = OrderedDict()
        self.max_entries = max_entries
        self.epoch = 0

    def get(self, key: tuple[int, int]) -> Entry | None:
        e = self._d.get(key)
        if e is not None:
            self._d.move_to_end(key)
        return e

    def put(self, key: tuple[int, int], entry: Entry, epoch: int) -> None:
        if epoch != self.epoch or self.max_entries <= 0:
            return
        self._d[key] = entry
        self._d.move_to_end(key)
        while len(self._d) > self.max_entries:
            self._d.popitem(last=False)

    def drop(self, key: tuple[int, int]) -> None:
        self._d.pop(key, None)
        self.epoch += 1

    def clear(self) -> None:
        self._d.clear()
        self.epoch += 1

    def __len__(self) -> int:
        return len(self._d)


@dataclass(frozen=True)
class CaSlot:
    """Where one CA's subscriber entries go."""

    issuer_id: int
    dn: str  # the CA entry's DN as published
    ndn: str
    position: int  # of the CA entry in the snapshot's order


def _await(aw: Awaitable[Any]) -> Generator[Wait, None, Any]:
    """Start a store read; yield `Wait` until it is done, then return its result (or raise)."""
    fut = asyncio.ensure_future(aw)
    while not fut.done():
        yield Wait(fut)
    return fut.result()


class StoreDirectory:
    """The directory a search sees: `snapshot` plus the subscribers of `cas` from `store`.

    Immutable like a snapshot: `ldap.service` swaps in a new one whenever the change log
    moves, so that the server's per-snapshot response cache never outlives a change.
    """

    def __init__(self, snapshot: Directory, store: Store, cas: Sequence[tuple[int, str]],
                 cache: EntryCache, *, names_ready: bool = True) -> None:
        self.snapshot = snapshot
        self.store = store
        self.cache = cache
        # False while the store's name index is behind: cn/sn/mail searches over
        # subscribers answer `unavailable` rather than an incomplete result.
        self.names_ready = names_ready
        slots = []
        for issuer_id, dn in cas:
            ndn = dnmod.normalise(dn)
            pos = snapshot.position(ndn)
            if pos is not None:
                slots.append(CaSlot(issuer_id, snapshot.get(ndn).dn, ndn, pos))  # type: ignore[union-attr]
        self.slots = sorted(slots, key=lambda s: s.position)
        self._by_ndn = {s.ndn: s for s in self.slots}
        self.naming_contexts = snapshot.naming_contexts
        self.root_dse = snapshot.root_dse

    # The snapshot's part, for callers that look at it whole.
    def __len__(self) -> int:
        return len(self.snapshot)

    def __iter__(self) -> Iterator[Entry]:
        return iter(self.snapshot)

    def get(self, dn: str | bytes) -> Entry | None:
        return self.snapshot.get(dn)

    def lookup(self, ndn: str) -> Entry:
        return self.snapshot.lookup(ndn)

    # -- entries from the store ------------------------------------------------------------

    def _entry(self, cert: CertRecord | None, slot: CaSlot, epoch: int, keep: bool) -> Entry | None:
        if cert is None or not published(cert):
            return None
        key = (cert.issuer_id, cert.serial)
        e = self.cache.get(key)
        if e is None:
            e = subscriber_entry(cert, slot.dn)
            if e is not None and keep:
                self.cache.put(key, e, epoch)
        return e

    def _one(self, slot: CaSlot, serial: int) -> Generator[Wait, None, Entry | None]:
        e = self.cache.get((slot.issuer_id, serial))
        if e is not None:
            return e
        epoch = self.cache.epoch
        cert = yield from _await(self.store.certificate(slot.issuer_id, serial))
        return self._entry(cert, slot, epoch, True)

    def _scan(self, slot: CaSlot) -> Iterator[Entry | Wait]:
        """Every published subscriber of the CA, in serial order, a page per store read.
        Not cached: a scan would push the hot entries out."""
        after = -1
        while True:
            epoch = self.cache.epoch
            page = yield from _await(self.store.certificates(slot.issuer_id, after_serial=after, limit=PAGE))
            for cert in page:
                e = self._entry(cert, slot, epoch, False)
                if e is not None:
                    yield e
            if len(page) < PAGE:
                return
            after = page[-1].serial

    def _named(self, slot: CaSlot, attr: str, value: str) -> Iterator[Entry | Wait]:
        after = -1
        while True:
            epoch = self.cache.epoch
            page = yield from _await(self.store.certificates_named(
                slot.issuer_id, attr, value, after_serial=after, limit=PAGE))
            for cert in page:
                e = self._entry(cert, slot, epoch, True)
                if e is not None:
                    yield e
            if len(page) < PAGE:
                return
            after = page[-1].serial

    def _matching(self, slot: CaSlot, hint: IndexHint | None) -> Iterator[Entry | Wait]:
        """The CA's subscribers that may match the filter: through an index when the hint
        names an indexed attribute, else all of them."""
        if hint is not None:
            key, value = hint
            if key not in SUBSCRIBER_KEYS or (key == "objectclass" and value not in _CLASSES):
                return  # no subscriber entry holds that value: (objectClass=pkiCA) reads none
        if hint is not None and isinstance(hint[1], str):
            key, value = hint
            if key == "uid":
                serial = _serial(value)
                if serial is not None:
                    e = yield from self._one(slot, serial)
                    if e is not None:
                        yield e
                return
            if key in INDEXED:
                if not self.names_ready:
                    raise Unavailable("the name index is being built; try again shortly")
                yield from self._named(slot, INDEXED[key], value)
                return
        yield from self._scan(slot)

    # -- the search interface of `Directory` ------------------------------------------------

    def _subscriber(self, ndn: str) -> tuple[CaSlot, int | None] | None:
        """(slot, serial) when ndn is a DN under a CA's entry that only a subscriber entry
        could have; serial None when its RDN cannot be one."""
        parent = dnmod.parent(ndn)
        slot = self._by_ndn.get(parent) if parent else None
        if slot is None or self.snapshot.get(ndn) is not None:
            return None
        return self._parse_uid(slot, ndn)

    def _below_subscriber(self, ndn: str) -> tuple[CaSlot, int | None, str] | None:
        """(slot, serial, subscriber ndn) when ndn lies below a would-be subscriber entry."""
        p = dnmod.parent(ndn)
        for _ in range(64):  # DNs are short; bounded all the same
            if not p:
                return None
            slot = self._by_ndn.get(dnmod.parent(p) or "")
            if slot is not None and self.snapshot.get(p) is None:
                sub = self._parse_uid(slot, p)
                return slot, sub[1], p
            p = dnmod.parent(p)
        return None

    def _parse_uid(self, slot: CaSlot, ndn: str) -> tuple[CaSlot, int | None]:
        try:
            rdn = dnmod.parse(ndn)[0]
        except MalformedInput:
            return slot, None
        if len(rdn) != 1 or rdn[0][0].lower() not in ("uid", "0.9.2342.19200300.100.1.1"):
            return slot, None
        return slot, _serial(rdn[0][1].casefold())

    def _in_scope(self, slot: CaSlot, base: str, scope: int) -> bool:
        if scope == SCOPE_ONE:
            return slot.ndn == base
        return base == "" or slot.ndn == base or slot.ndn.endswith("," + base)

    def candidates(self, base: str, scope: int, hint: IndexHint | None) -> Iterator[Entry | Wait]:
        """As `Directory.candidates`, with `Wait` among the entries while the store is read."""
        sub = self._subscriber(base) if base else None
        if sub is not None:
            return self._subscriber_base(sub, scope)
        below = self._below_subscriber(base) if base and self.snapshot.get(base) is None else None
        if below is not None:
            return self._below(below)
        snapshot_part = self.snapshot.candidates(base, scope, hint)  # NoSuchObject for a bad base
        slots = [s for s in self.slots if scope != SCOPE_BASE and self._in_scope(s, base, scope)]
        if not slots:
            return snapshot_part
        if hint is None:
            return self._walk(snapshot_part, base, scope, slots)
        return self._merge(list(snapshot_part), slots, hint)

    def _subscriber_base(self, sub: tuple[CaSlot, int | None], scope: int) -> Iterator[Entry | Wait]:
        slot, serial = sub
        e = None
        if serial is not None:
            e = yield from self._one(slot, serial)
        if e is None:
            raise NoSuchObject(slot.dn)
        if scope != SCOPE_ONE:  # a subscriber entry has no children
            yield e

    def _below(self, below: tuple[CaSlot, int | None, str]) -> Iterator[Entry | Wait]:
        # Nothing is below a subscriber entry; the closest ancestor is it, or its CA.
        slot, serial, _ = below
        e = None
        if serial is not None:
            e = yield from self._one(slot, serial)
        raise NoSuchObject(e.dn if e is not None else slot.dn)

    def _walk(self, snapshot_part: Iterator[Entry], base: str, scope: int,
              slots: list[CaSlot]) -> Iterator[Entry | Wait]:
        """Tree order, as a whole directory's: a CA's subscribers follow its entry."""
        if scope == SCOPE_ONE:
            # The base is that CA: its subscribers, then what else the snapshot puts under it.
            for slot in slots:
                yield from self._scan(slot)
            yield from snapshot_part
            return
        by_ndn = {s.ndn: s for s in slots}
        for e in snapshot_part:
            yield e
            slot = by_ndn.get(e.ndn)
            if slot is not None:
                yield from self._scan(slot)

    def _merge(self, snapshot_part: list[Entry], slots: list[CaSlot],
               hint: IndexHint) -> Iterator[Entry | Wait]:
        """Directory order, as a whole directory's index gives it: each CA's subscribers
        come right after the snapshot entries up to and including the CA's own."""
        k = 0
        for slot in slots:
            while k < len(snapshot_part) and (self.snapshot.position(snapshot_part[k].ndn) or 0) <= slot.position:
                yield snapshot_part[k]
                k += 1
            yield from self._matching(slot, hint)
        yield from snapshot_part[k:]


def _serial(value: str) -> int | None:
    """The serial a uid value names: upper-case even-length hex as published, compared
    case-insensitively."""
    try:
        serial = int(value, 16)
    except ValueError:
        return None
    if serial < 0 or serial_hex(serial).casefold() != value.casefold():
        return None
    return serial
