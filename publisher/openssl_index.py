"""Reading an `openssl ca` database (index.txt) so a CA can move onto the service. Pure.

Each line has six tab-separated fields: status (V valid, R revoked, E expired), expiry,
revocation ("date[,reason[,extra]]"), serial (hex), file name (usually "unknown"), subject.
"""
from __future__ import annotations

import datetime as dt

from typing import Iterator, NamedTuple

from .crl import Reason
from .errors import MalformedInput

_UTC = dt.timezone.utc

# openssl's spellings (crypto/x509/v3_crld.c and apps/ca.c).
_REASONS = {
    "unspecified": Reason.unspecified,
    "keycompromise": Reason.keyCompromise,
    "cacompromise": Reason.cACompromise,
    "affiliationchanged": Reason.affiliationChanged,
    "superseded": Reason.superseded,
    "cessationofoperation": Reason.cessationOfOperation,
    "certificatehold": Reason.certificateHold,
    "removefromcrl": Reason.removeFromCRL,
}


class IndexLine(NamedTuple):
    """One line of index.txt (a NamedTuple: an import makes a million of them)."""

    line_no: int
    status: str  # V, R or E
    expiry: dt.datetime
    revoked_at: dt.datetime | None
    reason: Reason | None
    invalidity: dt.datetime | None  # keyTime of keyCompromise / CACompromise
    serial: int
    subject: str


_EPOCH = dt.datetime(1970, 1, 1, tzinfo=_UTC)
_MIDNIGHT: dict[str, dt.datetime] = {}  # "YYYYMMDD" -> that midnight, validated once


def parse_time(text: str) -> dt.datetime:
    """UTCTime (YYMMDDHHMMSSZ) or GeneralizedTime (YYYYMMDDHHMMSSZ), as openssl writes them."""
    # Slices and a per-day cache instead of strptime: a million-line index has two times a
    # line, most of them on a few thousand distinct days.
    n = len(text)
    if n == 13 and text[12] == "Z":
        date = ("19" if text[:2] >= "50" else "20") + text[:6]
        clock = text[6:12]
    elif n == 15 and text[14] == "Z":
        date, clock = text[:8], text[8:14]
    elif not text.endswith("Z"):
        raise ValueError(f"time {text!r} does not end in Z")
    else:
        raise ValueError(f"time {text!r} is not YYMMDDHHMMSSZ or YYYYMMDDHHMMSSZ")
    midnight = _MIDNIGHT.get(date)
    if midnight is None:
        if not (date.isascii() and date.isdigit()):
            raise ValueError(f"time {text!r} is not YYMMDDHHMMSSZ or YYYYMMDDHHMMSSZ")
        try:
            midnight = dt.datetime(int(date[:4]), int(date[4:6]), int(date[6:8]), tzinfo=_UTC)
        except ValueError as e:
            raise ValueError(f"time {text!r}: {e}") from None
        _MIDNIGHT[date] = midnight
    if not (clock.isascii() and clock.isdigit()):
        raise ValueError(f"time {text!r} is not YYMMDDHHMMSSZ or YYYYMMDDHHMMSSZ")
    h, m, sec = int(clock[:2]), int(clock[2:4]), int(clock[4:])
    if h > 23 or m > 59 or sec > 59:
        raise ValueError(f"time {text!r}: hour, minute or second out of range")
    return midnight + dt.timedelta(seconds=h * 3600 + m * 60 + sec)


_HEX = frozenset("0123456789abcdefABCDEF")


def parse_line(line: str, line_no: int, source: str) -> IndexLine:
    fields = line.rstrip("\r\n").split("\t")
    if len(fields) != 6:
        raise MalformedInput(f"{source}:{line_no}: expected 6 tab-separated fields, found {len(fields)}")
    status, expiry, revocation, serial, _file, subject = fields
    if status not in ("V", "R", "E"):
        raise MalformedInput(f"{source}:{line_no}: status {status!r} is not V, R or E")
    try:
        expires = parse_time(expiry)
    except ValueError as e:
        raise MalformedInput(f"{source}:{line_no}: expiry: {e}") from None
    # Hex digits only: int() would also take "-05", "+05", "0x5", "5_0", " 5".
    if not serial or not _HEX.issuperset(serial):
        raise MalformedInput(f"{source}:{line_no}: serial {serial!r} is not hex")
    number = int(serial, 16)
    if status != "R":
        if revocation:
            raise MalformedInput(f"{source}:{line_no}: status {status} with a revocation field {revocation!r}")
        return IndexLine(line_no, status, expires, None, None, None, number, subject)
    reason = invalidity = None
    parts = revocation.split(",")
    try:
        revoked_at = parse_time(parts[0])
    except ValueError as e:
        raise MalformedInput(f"{source}:{line_no}: revocation date: {e}") from None
    if len(parts) > 1:
        reason = _REASONS.get(parts[1].lower())
        if reason is None:
            raise MalformedInput(f"{source}:{line_no}: unknown revocation reason {parts[1]!r}")
        if reason is Reason.removeFromCRL:
            raise MalformedInput(f"{source}:{line_no}: removeFromCRL is only for delta CRLs")
        if len(parts) > 2 and (reason is Reason.keyCompromise or reason is Reason.cACompromise):
            try:
                invalidity = parse_time(parts[2])
            except ValueError as e:
                raise MalformedInput(f"{source}:{line_no}: compromise time: {e}") from None
    return IndexLine(line_no, status, expires, revoked_at, reason, invalidity, number, subject)


def read_index(path, source: str | None = None) -> Iterator[IndexLine]:
    source = source or str(path)
    with open(path, "rb") as f:
        for n, raw in enumerate(f, 1):
            try:
                line = raw.decode("utf-8")
            except UnicodeDecodeError as e:
                raise MalformedInput(f"{source}:{n}: not UTF-8 text (byte {e.start})") from None
            if line.strip():
                yield parse_line(line, n, source)
