"""An immutable snapshot of the directory, and the search over it.

A `Directory` is built whole and never changed: an update builds a new one and the server
swaps a single reference, so a search that started on the old snapshot finishes on it and
no client ever sees half an update.  Everything derived from a snapshot (the children and
equality indexes, the encoded attributes of each entry) lives in that snapshot and is dropped
with it; the server keeps its cache of complete search responses per snapshot too.

Pure: no Twisted, no I/O.
"""
from __future__ import annotations

from collections import OrderedDict
from typing import Iterable, Iterator, Mapping, Sequence

from . import dn as dnmod
from .entry import AttrValues, Attribute, Entry, Selection
from .errors import NoSuchObject
from .filters import IndexHint, Predicate

__all__ = [
    "Attribute", "Directory", "DirectoryHolder", "Entry", "NoSuchObject", "ResponseCache",
    "Selection", "SCOPE_BASE", "SCOPE_ONE", "SCOPE_SUBTREE", "Wait",
]

SCOPE_BASE, SCOPE_ONE, SCOPE_SUBTREE = 0, 1, 2


class Wait:
    """Yielded by a directory's `candidates` in place of an entry when the next one is still
    being read from the store: the search pauses until `future` is done, then iterates on."""

    __slots__ = ("future",)

    def __init__(self, future: object) -> None:
        self.future = future


class ResponseCache:
    """Complete search responses (protocolOps without message IDs), keyed on request bytes.

    Bounded in entries and in bytes; least recently used first out.
    """

    def __init__(self, max_entries: int = 4096, max_bytes: int = 64 << 20) -> None:
        self._d: OrderedDict[bytes, tuple[bytes, ...]] = OrderedDict()
        self._bytes = 0
        self.max_entries = max_entries
        self.max_bytes = max_bytes

    def get(self, key: bytes) -> tuple[bytes, ...] | None:
        ops = self._d.get(key)
        if ops is not None:
            self._d.move_to_end(key)
        return ops

    def put(self, key: bytes, ops: tuple[bytes, ...]) -> None:
        size = len(key) + sum(len(o) for o in ops)
        if size > self.max_bytes // 8 or key in self._d:
            return
        self._d[key] = ops
        self._bytes += size
        while len(self._d) > self.max_entries or self._bytes > self.max_bytes:
            k, old = self._d.popitem(last=False)
            self._bytes -= len(k) + sum(len(o) for o in old)

    def __len__(self) -> int:
        return len(self._d)


class Directory:
    """An immutable set of entries with a root DSE; safe to share between connections."""

    def __init__(
        self,
        entries: Iterable[Entry],
        *,
        naming_contexts: Sequence[str] | None = None,
        vendor: str = "pkirepo",
    ) -> None:
        by_ndn: dict[str, Entry] = {}
        order: list[Entry] = []
        for e in entries:
            if e.ndn in by_ndn:
                raise ValueError(f"duplicate entry {e.dn!r}")
            if not e.ndn:
                raise ValueError("the root DSE is not an ordinary entry")
            by_ndn[e.ndn] = e
            order.append(e)
        children: dict[str, list[str]] = {}
        roots: list[Entry] = []
        for e in order:
            p = dnmod.parent(e.ndn)
            if p is not None and p in by_ndn:
                children.setdefault(p, []).append(e.ndn)
            else:
                roots.append(e)
        self._by_ndn = by_ndn
        self._order = order
        self._children = {k: tuple(v) for k, v in children.items()}
        self._roots = tuple(r.ndn for r in roots)
        self._index: dict[str, dict[bytes | str, tuple[str, ...]]] = {}
        self._position = {e.ndn: i for i, e in enumerate(order)}
        if naming_contexts is None:
            naming_contexts = [r.dn for r in roots]
        self.naming_contexts = tuple(naming_contexts)
        self.root_dse = Entry.make(
            "",
            [
                ("objectClass", ["top"]),
                ("namingContexts", list(self.naming_contexts)),
                ("supportedLDAPVersion", ["3"]),
                ("supportedExtension", ["1.3.6.1.4.1.4203.1.11.3"]),
                ("vendorName", [vendor]),
            ],
        )

    @classmethod
    def from_entries(
        cls, entries: Iterable[tuple[str, Mapping[str, AttrValues]]], **kw: object
    ) -> "Directory":
        """Build from (dn, {attribute: values}) pairs; values may be bytes or str."""
        return cls((Entry.make(d, a) for d, a in entries), **kw)  # type: ignore[arg-type]

    def __len__(self) -> int:
        return len(self._order)

    def __iter__(self) -> Iterator[Entry]:
        return iter(self._order)

    def get(self, dn: str | bytes) -> Entry | None:
        return self._by_ndn.get(dnmod.normalise(dn))

    def position(self, ndn: str) -> int | None:
        """Where the entry with this normalised DN comes in directory order."""
        return self._position.get(ndn)

    def lookup(self, ndn: str) -> Entry:
        """The entry with this normalised DN, or NoSuchObject naming the closest ancestor."""
        e = self._by_ndn.get(ndn)
        if e is not None:
            return e
        p = dnmod.parent(ndn)
        while p:
            anc = self._by_ndn.get(p)
            if anc is not None:
                raise NoSuchObject(anc.dn)
            p = dnmod.parent(p)
        raise NoSuchObject("")

    def _index_for(self, key: str) -> dict[bytes | str, tuple[str, ...]]:
        idx = self._index.get(key)
        if idx is None:
            acc: dict[bytes | str, list[str]] = {}
            for e in self._order:
                for v in e.norm.get(key, ()):
                    acc.setdefault(v, []).append(e.ndn)
            idx = {k: tuple(v) for k, v in acc.items()}
            self._index[key] = idx
        return idx

    def candidates(self, base: str, scope: int, hint: IndexHint | None) -> Iterator[Entry]:
        """Entries in scope of base (a normalised DN; "" is the whole tree), in directory
        order; when hint is given only those with that attribute value.  Raises
        NoSuchObject for an unknown base."""
        if base == "":
            if scope == SCOPE_BASE:
                yield self.root_dse
                return
            tops = self._roots
        else:
            self.lookup(base)
            tops = (base,)
        if hint is not None and scope != SCOPE_BASE:
            for ndn in self._index_for(hint[0]).get(hint[1], ()):
                if base == "":
                    if scope == SCOPE_SUBTREE or ndn in tops:
                        yield self._by_ndn[ndn]
                elif scope == SCOPE_SUBTREE:
                    if ndn == base or ndn.endswith("," + base):
                        yield self._by_ndn[ndn]
                elif dnmod.parent(ndn) == base:
                    yield self._by_ndn[ndn]
            return
        if scope == SCOPE_BASE:
            yield self._by_ndn[base]
        elif scope == SCOPE_ONE:
            for ndn in tops if base == "" else self._children.get(base, ()):
                yield self._by_ndn[ndn]
        else:
            stack = list(reversed(tops))
            children = self._children
            by_ndn = self._by_ndn
            while stack:
                ndn = stack.pop()
                yield by_ndn[ndn]
                kids = children.get(ndn)
                if kids:
                    stack.extend(reversed(kids))

    def search(self, base: str, scope: int, predicate: Predicate, hint: IndexHint | None = None) -> Iterator[Entry]:
        for e in self.candidates(base, scope, hint):
            if predicate(e) is True:
                yield e


class DirectoryHolder:
    """The current snapshot.  `current` is replaced whole; readers take it once per operation."""

    def __init__(self, directory: Directory | None = None) -> None:
        self.current = directory if directory is not None else Directory(())

    def __call__(self) -> Directory:
        return self.current

    def swap(self, directory: Directory) -> Directory:
        old, self.current = self.current, directory
        return old
