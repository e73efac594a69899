"""The client side of the wire for protocol tests: requests encoded and responses decoded
with ldaptor's codec (an independent implementation from the server's hand-written BER)."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ldaptor import ldapfilter
from ldaptor.protocols import pureber, pureldap

_CLIENT = pureldap.LDAPBERDecoderContext_TopLevel(
    inherit=pureldap.LDAPBERDecoderContext_LDAPMessage(
        fallback=pureldap.LDAPBERDecoderContext(fallback=pureber.BERDecoderContext()),
        inherit=pureldap.LDAPBERDecoderContext(fallback=pureber.BERDecoderContext()),
    )
)


def msg(op: Any, mid: int = 1, controls: list | None = None) -> bytes:
    return pureldap.LDAPMessage(op, id=mid, controls=controls).toWire()


def search(base: str | bytes, scope: int = 2, flt: str = "(objectClass=*)", attrs=(),
           size: int = 0, time: int = 0, types_only: bool = False) -> pureldap.LDAPSearchRequest:
    return pureldap.LDAPSearchRequest(
        baseObject=base.encode() if isinstance(base, str) else base, scope=scope,
        derefAliases=0, sizeLimit=size, timeLimit=time, typesOnly=int(types_only),
        filter=ldapfilter.parseFilter(flt),
        attributes=[a.encode() if isinstance(a, str) else a for a in attrs])


@dataclass
class Reply:
    id: int
    op: Any

    @property
    def code(self) -> int:
        return self.op.resultCode

    @property
    def attrs(self) -> dict[str, list[bytes]]:
        return {(k.decode() if isinstance(k, bytes) else k): list(v)
                for k, v in self.op.attributes}

    @property
    def dn(self) -> str:
        v = self.op.objectName
        return v.decode() if isinstance(v, bytes) else v


def replies(data: bytes) -> list[Reply]:
    out = []
    while data:
        obj, used = pureber.berDecodeObject(_CLIENT, data)
        assert obj is not None and used, data[:32]
        out.append(Reply(obj.id, obj.value))
        data = data[used:]
    return out


def entries(rs: list[Reply]) -> list[Reply]:
    return [r for r in rs if isinstance(r.op, pureldap.LDAPSearchResultEntry)]


def done(rs: list[Reply]) -> Reply:
    last = rs[-1]
    assert isinstance(last.op, pureldap.LDAPSearchResultDone), rs
    return last


def text(v: bytes | str) -> str:
    return v.decode() if isinstance(v, bytes) else v
