"""The little BER this server writes by hand, and the framing of incoming LDAP messages.

Requests are decoded with ldaptor's codec (`ldaptor.protocols.pureldap`); responses are
encoded here because they are built once per directory snapshot and then re-sent as bytes:
joining pre-encoded pieces is what makes repeated searches cheap.  Everything here is pure:
bytes in, bytes out.
"""
from __future__ import annotations

from dataclasses import dataclass

from publisher import der

from .errors import ProtocolViolation

# Universal and LDAP application tags used by the server (RFC 4511, appendix B).
SEQUENCE = 0x30
SET = 0x31
INTEGER = 0x02
OCTET_STRING = 0x04
ENUMERATED = 0x0A
BOOLEAN = 0x01

BIND_REQUEST = 0x60
BIND_RESPONSE = 0x61
UNBIND_REQUEST = 0x42
SEARCH_REQUEST = 0x63
SEARCH_RESULT_ENTRY = 0x64
SEARCH_RESULT_DONE = 0x65
MODIFY_REQUEST = 0x66
MODIFY_RESPONSE = 0x67
ADD_REQUEST = 0x68
ADD_RESPONSE = 0x69
DEL_REQUEST = 0x4A
DEL_RESPONSE = 0x6B
MODDN_REQUEST = 0x6C
MODDN_RESPONSE = 0x6D
COMPARE_REQUEST = 0x6E
COMPARE_RESPONSE = 0x6F
ABANDON_REQUEST = 0x50
EXTENDED_REQUEST = 0x77
EXTENDED_RESPONSE = 0x78
CONTROLS = 0xA0
RESPONSE_NAME = 0x8A
RESPONSE_VALUE = 0x8B

# The response that answers each request, with its result or with an error.
RESPONSE_TAGS = {
    BIND_REQUEST: BIND_RESPONSE,
    SEARCH_REQUEST: SEARCH_RESULT_DONE,
    MODIFY_REQUEST: MODIFY_RESPONSE,
    ADD_REQUEST: ADD_RESPONSE,
    DEL_REQUEST: DEL_RESPONSE,
    MODDN_REQUEST: MODDN_RESPONSE,
    COMPARE_REQUEST: COMPARE_RESPONSE,
    EXTENDED_REQUEST: EXTENDED_RESPONSE,
}


# Definite-form lengths and TLVs: the same encoder the CRL builder uses.
length = der.length
tlv = der.tlv


def integer(value: int, tag: int = INTEGER) -> bytes:
    body = value.to_bytes(max(1, (value.bit_length() + 8) // 8), "big", signed=True)
    return tlv(tag, body)


def octets(value: bytes, tag: int = OCTET_STRING) -> bytes:
    return bytes((tag,)) + length(len(value)) + value


def message_header(message_id: int, op_length: int) -> bytes:
    """The bytes that precede a protocolOp of op_length bytes in an LDAPMessage."""
    mid = integer(message_id)
    return bytes((SEQUENCE,)) + length(len(mid) + op_length) + mid


def message(message_id: int, op: bytes) -> bytes:
    return message_header(message_id, len(op)) + op


def ldap_result(
    tag: int, code: int, matched_dn: bytes = b"", diagnostic: bytes = b"", extra: bytes = b""
) -> bytes:
    """An LDAPResult-shaped protocolOp (bind, search done, modify, extended, ...)."""
    return tlv(
        tag,
        integer(code, ENUMERATED) + octets(matched_dn) + octets(diagnostic) + extra,
    )


class FrameError(ProtocolViolation):
    """The bytes on the wire are not a well-formed LDAPMessage; the connection must close."""

    def __init__(self, detail: str) -> None:
        super().__init__(f"malformed message: {detail}")


@dataclass(frozen=True, slots=True)
class Frame:
    """One LDAPMessage split without decoding the operation.

    `key` is everything after the messageID (protocolOp and controls): two requests with the
    same key ask the same question, which is what the per-snapshot response cache is keyed on.
    """

    message_id: int
    op_tag: int
    op: bytes
    key: bytes
    controls: bytes


def header(buf: bytes | bytearray | memoryview, pos: int) -> tuple[int, int, int] | None:
    """Read a tag and a definite length at pos: (tag, content_start, content_length).

    None if more bytes are needed; FrameError for forms LDAP forbids (indefinite lengths,
    multi-byte tags, lengths over 4 octets).
    """
    end = len(buf)
    if end - pos < 2:
        return None
    tag = buf[pos]
    if tag & 0x1F == 0x1F:
        raise FrameError("multi-byte BER tags are not used by LDAP")
    first = buf[pos + 1]
    if first < 0x80:
        return tag, pos + 2, first
    n = first & 0x7F
    if n == 0:
        raise FrameError("indefinite BER length")
    if n > 4:
        raise FrameError("BER length too long")
    if end - pos < 2 + n:
        return None
    value = int.from_bytes(buf[pos + 2 : pos + 2 + n], "big")
    return tag, pos + 2 + n, value


def split_message(body: bytes) -> Frame:
    """Split the content of an LDAPMessage SEQUENCE into id, operation and controls."""
    h = header(body, 0)
    if h is None:
        raise FrameError("truncated messageID")
    tag, start, n = h
    if tag != INTEGER or n == 0 or n > 4 or start + n > len(body):
        raise FrameError("bad messageID")
    message_id = int.from_bytes(body[start : start + n], "big", signed=True)
    if not 0 <= message_id <= 2**31 - 1:
        raise FrameError("messageID out of range")
    pos = start + n
    h = header(body, pos)
    if h is None:
        raise FrameError("missing protocolOp")
    op_tag, op_start, op_len = h
    op_end = op_start + op_len
    if op_end > len(body):
        raise FrameError("truncated protocolOp")
    controls = b""
    if op_end < len(body):
        h = header(body, op_end)
        if h is None or h[0] != CONTROLS or h[1] + h[2] != len(body):
            raise FrameError("trailing bytes after protocolOp")
        controls = bytes(body[op_end:])
    return Frame(
        message_id=message_id,
        op_tag=op_tag,
        op=bytes(body[pos:op_end]),
        key=bytes(body[pos:]),
        controls=controls,
    )
