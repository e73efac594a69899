"""One directory entry with its attributes encoded once, and the attribute selection of a
search.

An `Entry` keeps, next to its attribute values, their BER (with and without values) and
their normalised forms, so that answering a search joins bytes and matching a filter is a
set lookup.  Pure: no Twisted, no I/O.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Iterable, Mapping, Sequence

from . import ber, dn as dnmod, schema

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
