"""A minimal DER encoder for the structures we build by hand.

CRLs of a million entries are built by joining pre-encoded entries (see crl.py), which
neither asn1crypto's object model nor cryptography's builder does fast enough. Everything
here is pure: bytes in, bytes out.
"""
from __future__ import annotations

import datetime as dt
import functools

# Universal tags.
BOOLEAN = 0x01
INTEGER = 0x02
BIT_STRING = 0x03
OCTET_STRING = 0x04
NULL = 0x05
OID = 0x06
ENUMERATED = 0x0A
UTC_TIME = 0x17
GENERALIZED_TIME = 0x18
SEQUENCE = 0x30
SET = 0x31


def length(n: int) -> bytes:
    if n < 0x80:
        return bytes((n,))
    body = n.to_bytes((n.bit_length() + 7) // 8, "big")
    return bytes((0x80 | len(body),)) + body


def tlv(tag: int, content: bytes) -> bytes:
    n = len(content)
    if n < 0x80:  # the common case, a few times per CRL entry: one call, no length()
        return bytes((tag, n)) + content
    return bytes((tag,)) + length(n) + content


def sequence(*parts: bytes) -> bytes:
    return tlv(SEQUENCE, b"".join(parts))


def explicit(number: int, content: bytes) -> bytes:
    """[number] EXPLICIT (constructed, context-specific)."""
    return tlv(0xA0 | number, content)


def implicit_constructed(number: int, content: bytes) -> bytes:
    return tlv(0xA0 | number, content)


def implicit_primitive(number: int, content: bytes) -> bytes:
    return tlv(0x80 | number, content)


def integer(value: int) -> bytes:
    if value == 0:
        return tlv(INTEGER, b"\x00")
    if value > 0:
        body = value.to_bytes(value.bit_length() // 8 + 1, "big")  # room for the sign bit
    else:
        body = value.to_bytes((value + 1).bit_length() // 8 + 1, "big", signed=True)
    return tlv(INTEGER, body)


def enumerated(value: int) -> bytes:
    return tlv(ENUMERATED, integer(value)[2:])


def boolean(value: bool) -> bytes:
    return tlv(BOOLEAN, b"\xff" if value else b"\x00")


def octet_string(content: bytes) -> bytes:
    return tlv(OCTET_STRING, content)


def bit_string(content: bytes, unused_bits: int = 0) -> bytes:
    return tlv(BIT_STRING, bytes((unused_bits,)) + content)


@functools.lru_cache(maxsize=256)  # a few fixed OIDs, encoded once per entry on imports
def oid(dotted: str) -> bytes:
    arcs = [int(a) for a in dotted.split(".")]
    if len(arcs) < 2 or arcs[0] > 2 or (arcs[0] < 2 and arcs[1] >= 40):
        raise ValueError(f"not an object identifier: {dotted!r}")
    out = bytearray()
    for arc in [arcs[0] * 40 + arcs[1], *arcs[2:]]:
        chunk = [arc & 0x7F]
        arc >>= 7
        while arc:
            chunk.append(0x80 | (arc & 0x7F))
            arc >>= 7
        out += bytes(reversed(chunk))
    return tlv(OID, bytes(out))


def _utc(when: dt.datetime) -> dt.datetime:
    if when.tzinfo is dt.timezone.utc:
        return when
    if when.tzinfo is None:
        raise ValueError("naive datetime: pass an aware UTC time")
    return when.astimezone(dt.timezone.utc)


# Formatted by hand rather than with strftime, which costs more and is called once per
# entry when a million-line index is imported. Fractions of a second are dropped.
def generalized_time(when: dt.datetime) -> bytes:
    w = _utc(when)
    text = f"{w.year:04d}{w.month:02d}{w.day:02d}{w.hour:02d}{w.minute:02d}{w.second:02d}Z"
    return tlv(GENERALIZED_TIME, text.encode())


def x509_time(when: dt.datetime) -> bytes:
    """RFC 5280 §4.1.2.5: UTCTime through 2049, GeneralizedTime from 2050 on."""
    w = _utc(when)
    if 1950 <= w.year < 2050:
        text = f"{w.year % 100:02d}{w.month:02d}{w.day:02d}{w.hour:02d}{w.minute:02d}{w.second:02d}Z"
        return tlv(UTC_TIME, text.encode())
    return generalized_time(w)


def extension(dotted_oid: str, value_der: bytes, critical: bool = False) -> bytes:
    parts = [oid(dotted_oid)]
    if critical:  # DER: a DEFAULT FALSE value is never encoded
        parts.append(boolean(True))
    parts.append(octet_string(value_der))
    return sequence(*parts)


def read_tlv(data: bytes, offset: int = 0) -> tuple[int, int, int]:
    """Return (tag, start of content, end of content) of the TLV at offset."""
    if offset + 2 > len(data):
        raise ValueError("truncated DER")
    tag = data[offset]
    first = data[offset + 1]
    pos = offset + 2
    if first < 0x80:
        size = first
    else:
        count = first & 0x7F
        if count == 0 or count > 8 or pos + count > len(data):
            raise ValueError("bad DER length")
        size = int.from_bytes(data[pos : pos + count], "big")
        pos += count
    if pos + size > len(data):
        raise ValueError("truncated DER")
    return tag, pos, pos + size
