"""Reading an `openssl ca` database (index.txt) so a CA can move onto the service. Pure.

Each line has six tab-separated fields: status (V valid, R revoked, E expired), expiry,
revocation ("date[,reason[,extra]]"), serial (hex), file name (usually "unknown"), subject.
"""
from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass
from typing import Iterator

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


@dataclass(frozen=True)
class IndexLine:
    line_no: int
    status: str  # V, R or E
    expiry: dt.datetime
    revoked_at: dt.datetime | None
    reason: Reason | None
    invalidity: dt.datetime | None  # keyTime of keyCompromise / CACompromise
    serial: int
    subject: str


_TIME = re.compile(r"(\d\d)?(\d\d)(\d\d)(\d\d)(\d\d)(\d\d)(\d\d)Z", re.ASCII)


def parse_time(text: str) -> dt.datetime:
    """UTCTime (YYMMDDHHMMSSZ) or GeneralizedTime (YYYYMMDDHHMMSSZ), as openssl writes them."""
    # One regex and the constructor, not strptime: a million-line index has two times a
    # line, and strptime costs several times more. The constructor rejects what strptime
    # would (month 13, second 60, ...).
    m = _TIME.fullmatch(text)
    if m is None:
        if not text.endswith("Z"):
            raise ValueError(f"time {text!r} does not end in Z")
        raise ValueError(f"time {text!r} is not YYMMDDHHMMSSZ or YYYYMMDDHHMMSSZ")
    century, yy, mo, d, h, mi, sec = m.groups()
    year = int(yy)
    if century is None:
        year += 1900 if year >= 50 else 2000
    else:
        year += int(century) * 100
    try:
        return dt.datetime(year, int(mo), int(d), int(h), int(mi), int(sec), tzinfo=_UTC)
    except ValueError as e:
        raise ValueError(f"time {text!r}: {e}") from None


def parse_line(line: str, line_no: int, source: str) -> IndexLine:
    fields = line.rstrip("\r\n").split("\t")
    where = f"{source}:{line_no}"
    if len(fields) != 6:
        raise MalformedInput(f"{where}: expected 6 tab-separated fields, found {len(fields)}")
    status, expiry, revocation, serial, _file, subject = fields
    if status not in ("V", "R", "E"):
        raise MalformedInput(f"{where}: status {status!r} is not V, R or E")
    try:
        expires = parse_time(expiry)
    except ValueError as e:
        raise MalformedInput(f"{where}: expiry: {e}") from None
    try:
        if not serial or serial.strip("0123456789abcdefABCDEF"):
            raise ValueError  # int() would also take "-05", "+05", "0x5", "5_0", " 5"
        number = int(serial, 16)
    except ValueError:
        raise MalformedInput(f"{where}: serial {serial!r} is not hex") from None
    revoked_at = reason = invalidity = None
    if status == "R":
        parts = revocation.split(",")
        try:
            revoked_at = parse_time(parts[0])
        except ValueError as e:
            raise MalformedInput(f"{where}: revocation date: {e}") from None
        if len(parts) > 1:
            reason = _REASONS.get(parts[1].lower())
            if reason is None:
                raise MalformedInput(f"{where}: unknown revocation reason {parts[1]!r}")
            if reason in (Reason.keyCompromise, Reason.cACompromise) and len(parts) > 2:
                try:
                    invalidity = parse_time(parts[2])
                except ValueError as e:
                    raise MalformedInput(f"{where}: compromise time: {e}") from None
            if reason is Reason.removeFromCRL:
                raise MalformedInput(f"{where}: removeFromCRL is only for delta CRLs")
    elif revocation:
        raise MalformedInput(f"{where}: status {status} with a revocation field {revocation!r}")
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
