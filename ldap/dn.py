"""Distinguished names (RFC 4514): parsing, and the normal form entries are looked up by.

The normal form makes `cn=Hongkong Post e-Cert CA 2 - 17 CRL1, o=Hongkong Post, c=HK`,
`CN=hongkong post e-cert ca 2 - 17 crl1,O=Hongkong Post,C=hk` and `2.5.4.3=...` the same key:
attribute types become their lower-cased primary names, values are unescaped, case-folded and
space-collapsed, multi-valued RDNs are sorted, and the RDNs are joined with a bare comma.
"""
from __future__ import annotations

from functools import lru_cache

from publisher.errors import MalformedInput

from . import schema

_SPECIAL = set(',+"\\<>;=')
_HEX = set("0123456789abcdefABCDEF")


class InvalidDN(MalformedInput):
    """A DN that does not parse; LDAP answers invalidDNSyntax."""

    ldap_result = 34  # invalidDNSyntax


RDN = tuple[tuple[str, str], ...]


def parse(text: str | bytes) -> tuple[RDN, ...]:
    """Split a DN into RDNs of (type, unescaped value) pairs, most specific RDN first.

    Accepts RFC 4514 strings and the older forms clients still send: spaces around `,`,
    `+` and `=`, `;` as RDN separator, and quoted values.
    """
    if isinstance(text, bytes):
        try:
            text = text.decode("utf-8")
        except UnicodeDecodeError as e:
            raise InvalidDN("DN is not UTF-8") from e
    s = text
    n = len(s)
    i = 0
    rdns: list[RDN] = []
    current: list[tuple[str, str]] = []
    while True:
        while i < n and s[i] == " ":
            i += 1
        if i == n:
            if current or rdns:
                raise InvalidDN(f"DN ends after a separator: {text!r}")
            return ()
        # attribute type
        j = i
        while j < n and s[j] not in "= ":
            j += 1
        attr = s[i:j]
        while j < n and s[j] == " ":
            j += 1
        if not attr or j == n or s[j] != "=":
            raise InvalidDN(f"missing '=' in DN: {text!r}")
        if not (attr[0].isalpha() and all(c.isalnum() or c == "-" for c in attr)) and not (
            all(c.isdigit() or c == "." for c in attr) and attr[0].isdigit()
        ):
            raise InvalidDN(f"bad attribute type {attr!r} in DN")
        i = j + 1
        while i < n and s[i] == " ":
            i += 1
        value, i = _value(s, i, text)
        current.append((attr, value))
        if i == n:
            rdns.append(tuple(current))
            return tuple(rdns)
        sep = s[i]
        i += 1
        if sep == "+":
            continue
        if sep in ",;":
            rdns.append(tuple(current))
            current = []
            continue
        raise InvalidDN(f"unexpected {sep!r} in DN: {text!r}")


def _value(s: str, i: int, text: str) -> tuple[str, int]:
    n = len(s)
    if i < n and s[i] == "#":
        j = i + 1
        while j < n and s[j] in _HEX:
            j += 1
        if (j - i - 1) % 2 or j == i + 1:
            raise InvalidDN(f"bad hex value in DN: {text!r}")
        value = s[i:j].lower()
        while j < n and s[j] == " ":
            j += 1
        return value, j
    if i < n and s[i] == '"':
        out = []
        j = i + 1
        while j < n and s[j] != '"':
            if s[j] == "\\":
                j += 1
                if j == n:
                    break
            out.append(s[j])
            j += 1
        if j == n:
            raise InvalidDN(f"unterminated quoted value in DN: {text!r}")
        j += 1
        while j < n and s[j] == " ":
            j += 1
        return "".join(out), j
    raw = bytearray()
    trailing_spaces = 0  # unescaped spaces at the end are not part of the value
    j = i
    while j < n and s[j] not in ",;+":
        c = s[j]
        if c == "\\":
            if j + 1 >= n:
                raise InvalidDN(f"DN ends with a backslash: {text!r}")
            nxt = s[j + 1]
            if nxt in _HEX and j + 2 < n and s[j + 2] in _HEX:
                raw.append(int(s[j + 1 : j + 3], 16))
                j += 3
            elif nxt in _SPECIAL or nxt in " #=":
                raw += nxt.encode()
                j += 2
            else:
                raise InvalidDN(f"bad escape in DN: {text!r}")
            trailing_spaces = 0
            continue
        if c in '"<>=':
            # RFC 4514 requires these escaped; '=' is tolerated by most servers, others not.
            if c != "=":
                raise InvalidDN(f"unescaped {c!r} in DN: {text!r}")
        raw += c.encode()
        trailing_spaces = trailing_spaces + 1 if c == " " else 0
        j += 1
    if trailing_spaces:
        del raw[-trailing_spaces:]
    try:
        return raw.decode("utf-8"), j
    except UnicodeDecodeError as e:
        raise InvalidDN(f"DN value is not UTF-8: {text!r}") from e


def _norm_type(attr: str) -> str:
    at = schema.lookup(attr)
    return at.key if at is not None else attr.lower()


def escape_value(value: str) -> str:
    """An attribute value escaped for a DN string (RFC 4514 section 2.4)."""
    return _escape(value)


def _escape(value: str) -> str:
    out = []
    for k, c in enumerate(value):
        if c in _SPECIAL or (c in " #" and k == 0) or (c == " " and k == len(value) - 1):
            out.append("\\" + c)
        else:
            out.append(c)
    return "".join(out)


def normalise_rdn(rdn: RDN) -> str:
    parts = sorted(
        f"{_norm_type(t)}={_escape(' '.join(v.casefold().split()))}" for t, v in rdn
    )
    return "+".join(parts)


@lru_cache(maxsize=8192)
def normalise(text: str | bytes) -> str:
    """The lookup key of a DN. Raises InvalidDN."""
    return ",".join(normalise_rdn(r) for r in parse(text))


def parent(ndn: str) -> str | None:
    """The normalised parent of a normalised DN; None for the root DSE."""
    if not ndn:
        return None
    i = 0
    while True:
        j = ndn.find(",", i)
        if j < 0:
            return ""
        # a comma preceded by an odd number of backslashes is escaped
        k = j
        while k > 0 and ndn[k - 1] == "\\":
            k -= 1
        if (j - k) % 2 == 0:
            return ndn[j + 1 :]
        i = j + 1
