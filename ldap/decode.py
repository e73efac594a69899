"""The requests off the hot path (bind, compare, extended) and request controls, decoded
with ldaptor's codec into the plain values of `ldap.requests`; ldaptor's filter objects in
the tuple form.

Anything that does not decode is a `ProtocolViolation`: the session ends with a Notice of
Disconnection (RFC 4511 4.1.1).  ldaptor reports bad input with asserts and IndexErrors, so
every exception from its decoder counts as such.
"""
from __future__ import annotations

from typing import Any

from ldaptor.protocols import pureber
from ldaptor.protocols import pureldap as pl

from .errors import ProtocolViolation
from .requests import BindRequest, CompareRequest, Control, ExtendedRequest, Filter

# ldaptor's decoder contexts for one protocolOp and for the controls, as its own
# BaseLDAPServer builds them.
_OP_CONTEXT = pl.LDAPBERDecoderContext(
    fallback=pureber.BERDecoderContext(),
    inherit=pl.LDAPBERDecoderContext(fallback=pureber.BERDecoderContext()),
)
_CONTROLS_CONTEXT = pl.LDAPBERDecoderContext_LDAPMessage(
    inherit=pl.LDAPBERDecoderContext(fallback=pureber.BERDecoderContext())
)


def _text(v: Any) -> bytes:
    return v if isinstance(v, bytes) else str(v).encode("utf-8")


def _decode(op: bytes, cls: type, what: str) -> Any:
    try:
        obj, used = pureber.berDecodeObject(_OP_CONTEXT, op)
    except Exception as e:
        raise ProtocolViolation(f"malformed request: {type(e).__name__}") from e
    if obj is None or used != len(op):
        raise ProtocolViolation("malformed request")
    if not isinstance(obj, cls):
        raise ProtocolViolation(f"malformed {what} request")
    return obj


def bind_request(op: bytes) -> BindRequest:
    req = _decode(op, pl.LDAPBindRequest, "bind")
    return BindRequest(
        version=req.version,
        name=_text(req.dn),
        password=b"" if req.sasl else _text(req.auth),
        sasl=bool(req.sasl),
    )


def compare_request(op: bytes) -> CompareRequest:
    req = _decode(op, pl.LDAPCompareRequest, "compare")
    return CompareRequest(
        entry=_text(req.entry),
        attribute=_text(req.ava.attributeDesc.value),
        value=_text(req.ava.assertionValue.value),
    )


def extended_request(op: bytes) -> ExtendedRequest:
    req = _decode(op, pl.LDAPExtendedRequest, "extended")
    return ExtendedRequest(name=_text(req.requestName))


def controls(data: bytes) -> tuple[Control, ...]:
    """The controls of a message (`ber.Frame.controls`, tag included; empty for none)."""
    if not data:
        return ()
    try:
        obj, _ = pureber.berDecodeObject(_CONTROLS_CONTEXT, data)
        items = list(obj) if obj is not None else []
        return tuple(Control(oid=_text(c.controlType), critical=bool(getattr(c, "criticality", None)))
                     for c in items)
    except Exception as e:
        raise ProtocolViolation("malformed controls") from e


def from_ldaptor(f: object) -> Filter:
    """The tuple form of an ldaptor filter object."""
    def b(v: object) -> bytes:
        v = getattr(v, "value", v)
        return v if isinstance(v, bytes) else str(v).encode("utf-8")

    if isinstance(f, pl.LDAPFilter_and):
        return ("and", [from_ldaptor(x) for x in f])
    if isinstance(f, pl.LDAPFilter_or):
        return ("or", [from_ldaptor(x) for x in f])
    if isinstance(f, pl.LDAPFilter_not):
        return ("not", from_ldaptor(f.value))
    if isinstance(f, pl.LDAPFilter_present):
        return ("present", b(f))
    for cls, name in ((pl.LDAPFilter_equalityMatch, "eq"), (pl.LDAPFilter_greaterOrEqual, "ge"),
                      (pl.LDAPFilter_lessOrEqual, "le"), (pl.LDAPFilter_approxMatch, "approx")):
        if isinstance(f, cls):
            return (name, b(f.attributeDesc), b(f.assertionValue))
    if isinstance(f, pl.LDAPFilter_substrings):
        initial = final = None
        anys = []
        for s in f.substrings:
            if isinstance(s, pl.LDAPFilter_substrings_initial):
                initial = b(s)
            elif isinstance(s, pl.LDAPFilter_substrings_any):
                anys.append(b(s))
            else:
                final = b(s)
        return ("sub", b(f.type), initial, anys, final)
    if isinstance(f, pl.LDAPFilter_extensibleMatch):
        return ("ext", None if f.matchingRule is None else b(f.matchingRule),
                None if f.type is None else b(f.type), b(f.matchValue),
                bool(f.dnAttributes and f.dnAttributes.value))
    raise TypeError(f"not a filter: {f!r}")
