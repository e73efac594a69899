"""ldaptor's filter objects in the tuple form of `ldap.requests`."""
from __future__ import annotations

from ldaptor.protocols import pureldap as pl

from .requests import Filter


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
