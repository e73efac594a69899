"""The trust list of certificate types qualifying for Guangdong–Hong Kong mutual recognition
(CP 一(四), annex 1.2).

Pure: what an entry is (issuing CA, certificate type, the CP's policy OIDs, the CPS, names
in both languages, status history), the changes an operator may make and the refusals of
the others. Each change gives the next list; storing, signing and serving are elsewhere.
"""
from __future__ import annotations

import dataclasses
import datetime as dt
import enum
import hashlib
import re
import urllib.parse
from dataclasses import dataclass

from .errors import Conflict, MalformedInput, NotFound

# Traditional Chinese is authoritative (CP annex 1.2); English is the scheme's other language.
LANGUAGES = ("zh-Hant", "en")


class CertType(enum.Enum):
    PERSONAL = "personal"
    ORGANISATION = "organisation"


# CP 一(四): the policy OIDs each certificate type carries (MIIT's, then OGCIO's).
POLICY_OIDS: dict[CertType, tuple[str, ...]] = {
    CertType.PERSONAL: ("2.16.156.339.1.1.1.2.1", "2.16.344.8.2.2008.810.2.2018.1.1"),
    CertType.ORGANISATION: ("2.16.156.339.1.1.2.2.1",),
}

TYPE_NAMES = {
    CertType.PERSONAL: {"zh-Hant": "個人證書", "en": "Personal certificate"},
    CertType.ORGANISATION: {"zh-Hant": "機構證書", "en": "Organisation certificate"},
}


class Status(enum.Enum):
    GRANTED = "granted"
    SUSPENDED = "suspended"
    WITHDRAWN = "withdrawn"


STATUS_NAMES = {
    Status.GRANTED: {"zh-Hant": "已認可", "en": "Granted"},
    Status.SUSPENDED: {"zh-Hant": "暫停", "en": "Suspended"},
    Status.WITHDRAWN: {"zh-Hant": "已撤銷", "en": "Withdrawn"},
}

MAX_NAME = 200
MAX_URL = 500
# List sequence numbers in URLs: canonical decimal, no leading zero, bounded.
SEQ_RE = re.compile(r"^[1-9][0-9]{0,8}$")


@dataclass(frozen=True)
class StatusPeriod:
    status: Status
    start: dt.datetime  # UTC, whole seconds


@dataclass(frozen=True)
class Entry:
    """One qualifying certificate type of one issuing CA, with its whole status history
    (oldest first; the last is the current status)."""

    id: int
    ca_name: str
    ca_cert_der: bytes
    cert_type: CertType
    policy_oids: tuple[str, ...]
    cps_url: str
    names: tuple[tuple[str, str], ...]  # (language, name), in LANGUAGES order
    history: tuple[StatusPeriod, ...]

    @property
    def status(self) -> StatusPeriod:
        return self.history[-1]

    @property
    def fingerprint(self) -> str:
        """SHA-256 of the CA certificate's DER, upper-case hex."""
        return hashlib.sha256(self.ca_cert_der).hexdigest().upper()

    def name(self, lang: str) -> str:
        return dict(self.names)[lang]

    @property
    def label(self) -> str:
        return f"{self.ca_name} {self.cert_type.value}"


@dataclass(frozen=True)
class TrustList:
    """One issue of the list: what is signed and published under its sequence number."""

    seq: int
    issued: dt.datetime
    next_update: dt.datetime
    operator: tuple[tuple[str, str], ...]  # (language, scheme operator name)
    distribution_url: str
    entries: tuple[Entry, ...]

    def operator_name(self, lang: str) -> str:
        return dict(self.operator)[lang]


def utc_seconds(when: dt.datetime) -> dt.datetime:
    if when.tzinfo is None:
        raise ValueError("times must be timezone-aware")
    return when.astimezone(dt.timezone.utc).replace(microsecond=0)


def parse_type(text: str) -> CertType:
    try:
        return CertType(text)
    except ValueError:
        raise MalformedInput(f"unknown certificate type {text!r}; use "
                             f"{' or '.join(t.value for t in CertType)}") from None


def check_policy_oids(cert_type: CertType, oids: list[str] | None) -> tuple[str, ...]:
    """The OIDs given (default: every OID of the type), each one the CP names for it."""
    if not oids:
        return POLICY_OIDS[cert_type]
    known = {oid: t for t, group in POLICY_OIDS.items() for oid in group}
    out: list[str] = []
    for oid in oids:
        if oid not in known:
            raise MalformedInput(f"unknown policy OID {oid!r}: the CP names "
                                 f"{', '.join(known)}")
        if known[oid] is not cert_type:
            raise MalformedInput(f"policy OID {oid} is for {known[oid].value} certificates, "
                                 f"not {cert_type.value}")
        if oid not in out:
            out.append(oid)
    return tuple(out)


def check_names(names: dict[str, str | None], what: str) -> tuple[tuple[str, str], ...]:
    """A name in each language, each non-empty, one line and bounded."""
    out = []
    for lang in LANGUAGES:
        value = (names.get(lang) or "").strip()
        if not value:
            raise MalformedInput(f"{what}: the name in {lang} is missing")
        if len(value) > MAX_NAME or not is_plain_text(value):
            raise MalformedInput(f"{what}: the {lang} name {value[:40]!r} must be one line of at most "
                                 f"{MAX_NAME} characters, without control characters")
        out.append((lang, value))
    return tuple(out)


def is_plain_text(value: str) -> bool:
    """One line of characters XML can carry: no control characters (C0, DEL, C1), no lone
    surrogates (an undecodable command-line byte), no U+FFFE or U+FFFF."""
    return not any(ord(c) < 32 or 127 <= ord(c) < 160 or 0xD800 <= ord(c) <= 0xDFFF or ord(c) in (0xFFFE, 0xFFFF)
                   or c in "\u2028\u2029" for c in value)


# RFC 3986 characters only (percent signs only as escapes), so that the XML's anyURI type
# (libxml2 parses it as a URI) accepts every URL we accept.
_URL = re.compile(r"https?://(?:[A-Za-z0-9\-._~:/?#\[\]@!$&'()*+,;=]|%%[0-9A-Fa-f]{2}){1,%d}" % MAX_URL)

_AUTHORITY = re.compile(r"(?:[A-Za-z0-9\-._~%!$&'()*+,;=:]*@)?(?:\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9\-._~%!$&'()*+,;=]+)(?::[0-9]{1,5})?")


def check_url(url: str, what: str) -> str:
    bad = MalformedInput(f"{what} {url!r} is not an http:// or https:// URL")
    if not _URL.fullmatch(url or ""):
        raise bad
    try:
        parts = urllib.parse.urlsplit(url)
        parts.port  # a port that is not a number raises here
    except ValueError:  # e.g. an unclosed IPv6 bracket
        raise bad from None
    rest = parts.path + parts.query + parts.fragment
    if not _AUTHORITY.fullmatch(parts.netloc) or any(c in rest for c in "[]#"):
        raise bad
    return url


def _active(entries: tuple[Entry, ...], ca_name: str, cert_type: CertType) -> Entry | None:
    for e in entries:
        if e.ca_name == ca_name and e.cert_type is cert_type and e.status.status is not Status.WITHDRAWN:
            return e
    return None


def _find(entries: tuple[Entry, ...], ca_name: str, cert_type: CertType) -> Entry:
    found = _active(entries, ca_name, cert_type)
    if found is not None:
        return found
    last = [e for e in entries if e.ca_name == ca_name and e.cert_type is cert_type]
    if last:
        since = last[-1].status.start.isoformat()
        raise Conflict(f"{ca_name} {cert_type.value} is withdrawn already (since {since}); "
                       f"`trustlist add` lists it again")
    raise NotFound(f"{ca_name} {cert_type.value} is not on the trust list")


def grant(entries: tuple[Entry, ...], *, ca_name: str, ca_cert_der: bytes, cert_type: CertType,
          policy_oids: tuple[str, ...], cps_url: str, names: tuple[tuple[str, str], ...],
          at: dt.datetime) -> Entry:
    """A new entry, granted from `at`; refused while the same CA and type is listed."""
    existing = _active(entries, ca_name, cert_type)
    if existing is not None:
        raise Conflict(f"{ca_name} {cert_type.value} is on the trust list already "
                       f"({existing.status.status.value} since {existing.status.start.isoformat()})")
    next_id = max((e.id for e in entries), default=0) + 1
    return Entry(next_id, ca_name, ca_cert_der, cert_type, policy_oids, cps_url, names,
                 (StatusPeriod(Status.GRANTED, utc_seconds(at)),))


# The changes of status an operator may make: from which statuses, to which.
TRANSITIONS = {
    Status.SUSPENDED: (Status.GRANTED,),
    Status.WITHDRAWN: (Status.GRANTED, Status.SUSPENDED),
    Status.GRANTED: (Status.SUSPENDED,),  # reinstatement after a suspension
}


def change_status(entries: tuple[Entry, ...], *, ca_name: str, cert_type: CertType, status: Status,
                  at: dt.datetime) -> Entry:
    """The entry with `status` from `at` added to its history; Conflict when its current
    status does not allow it or `at` is before the current status began."""
    entry = _find(entries, ca_name, cert_type)
    current = entry.status
    if current.status not in TRANSITIONS[status]:
        allowed = " or ".join(s.value for s in TRANSITIONS[status])
        raise Conflict(f"{entry.label} is {current.status.value}: only a {allowed} entry can become {status.value}")
    at = utc_seconds(at)
    if at < current.start:
        raise Conflict(f"status date {at.isoformat()} is before {entry.label}'s current status "
                       f"({current.status.value}) began, {current.start.isoformat()}")
    return dataclasses.replace(entry, history=entry.history + (StatusPeriod(status, at),))


def replace_entry(entries: tuple[Entry, ...], changed: Entry) -> tuple[Entry, ...]:
    """The entries with `changed` in place of the entry of its id, or added at the end."""
    if any(e.id == changed.id for e in entries):
        return tuple(changed if e.id == changed.id else e for e in entries)
    return entries + (changed,)


def parse_seq(text: str) -> int:
    """A list sequence number from a URL; NotFound (with the reason) for anything else."""
    if not SEQ_RE.match(text):
        raise NotFound(f"{text[:40]!r} is not a trust list sequence number (1, 2, 3, ...)")
    return int(text)
