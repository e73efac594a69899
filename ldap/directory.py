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
from dataclasses import dataclass, field
from typing import Iterable, Iterator, Mapping, Sequence

from . import ber, dn as dnmod, schema
from .filters import IndexHint, Predicate

SCOPE_BASE, SCOPE_ONE, SCOPE_SUBTREE = 0, 1, 2

AttrValues = Iterable["bytes | str"]


def _b(v: bytes | str) -> bytes:
    return v if isinstance(v, bytes) else v.encode("utf-8")


@dataclass(frozen=True, eq=False)
class Attribute:
    key: str  # lower-cased primary name: "certificaterevocationlist"
    name: str  # as sent: "certificateRevocationList;binary"
    values: tuple[bytes, ...]
    der: bytes = field(repr=False)  # PartialAttribute with values
    der_types_only: bytes = field(repr=False)  # PartialAttribute with an empty value set


@dataclass(frozen=True, eq=False)
class Entry:
    """One entry: its DN as published, its normalised DN, and its attributes in order."""

    dn: str
    ndn: str
    attributes: tuple[Attribute, ...]
    by_key: Mapping[str, Attribute] = field(repr=False)
    # Normalised values per key, for filter matching (see schema.normalise_value).
    norm: Mapping[str, frozenset] = field(repr=False)
    dn_der: bytes = field(repr=False)

    @classmethod
    def make(cls, dn: str, attributes: Mapping[str, AttrValues] | Iterable[tuple[str, AttrValues]]) -> "Entry":
        items = attributes.items() if isinstance(attributes, Mapping) else attributes
        merged: dict[str, tuple[str, list[bytes]]] = {}
        for name, values in items:
            if isinstance(values, (bytes, str)):
                values = [values]
            key, wire = schema.wire_name(name)
            slot = merged.setdefault(key, (wire, []))
            for v in values:
                bv = _b(v)
                if bv not in slot[1]:
                    slot[1].append(bv)
        attrs = []
        for key, (wire, values) in merged.items():
            if not values:
                continue
            name_der = ber.octets(wire.encode("utf-8"))
            vals_der = b"".join(ber.octets(v) for v in values)
            attrs.append(
                Attribute(
                    key=key,
                    name=wire,
                    values=tuple(values),
                    der=ber.tlv(ber.SEQUENCE, name_der + ber.tlv(ber.SET, vals_der)),
                    der_types_only=ber.tlv(ber.SEQUENCE, name_der + ber.tlv(ber.SET, b"")),
                )
            )
        by_key = {a.key: a for a in attrs}
        norm = {a.key: frozenset(schema.normalise_value(a.key, v) for v in a.values) for a in attrs}
        return cls(
            dn=dn,
            ndn=dnmod.normalise(dn),
            attributes=tuple(attrs),
            by_key=by_key,
            norm=norm,
            dn_der=ber.octets(dn.encode("utf-8")),
        )

    def encode(self, selection: "Selection", types_only: bool) -> bytes:
        """The SearchResultEntry protocolOp for this entry."""
        if selection.all_user or (selection.operational and not self.ndn):
            attrs = self.attributes
        elif selection.keys:
            attrs = [a for a in self.attributes if a.key in selection.keys]
        else:
            attrs = ()
        if types_only:
            body = b"".join(a.der_types_only for a in attrs)
        else:
            body = b"".join(a.der for a in attrs)
        return ber.tlv(ber.SEARCH_RESULT_ENTRY, self.dn_der + ber.tlv(ber.SEQUENCE, body))


@dataclass(frozen=True)
class Selection:
    """Which attributes a search returns (RFC 4511 4.5.1.8)."""

    all_user: bool
    keys: frozenset[str]
    operational: bool = False  # "+": on the root DSE, everything; elsewhere nothing more

    @classmethod
    def from_request(cls, names: Sequence[bytes | str]) -> "Selection":
        texts = [n.decode("utf-8", "replace") if isinstance(n, bytes) else n for n in names]
        if not texts or "*" in texts:
            return cls(True, frozenset(), "+" in texts)
        keys = set()
        for t in texts:
            if t in ("1.1", "+"):
                continue
            d = schema.parse_description(t)
            if d.usable:
                keys.add(d.key)
        return cls(False, frozenset(keys), "+" in texts)


class NoSuchObject(Exception):
    def __init__(self, matched_dn: str) -> None:
        super().__init__(matched_dn)
        self.matched_dn = matched_dn


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
