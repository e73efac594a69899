"""Notices the repository publishes (CPS 2.5; CP 四.8, 六.26): the suspension, revocation or
non-renewal of a CA certificate, incidents that affect the reliability of certificates, and
scheduled maintenance. Each has a title and a body in both languages of the site.

Pure: what a notice is and the checks it must pass before it is stored. No I/O.
"""
from __future__ import annotations

import datetime as dt
import enum
import unicodedata
from dataclasses import dataclass
from typing import Mapping

from .errors import MalformedInput


class NoticeKind(str, enum.Enum):
    CA_SUSPENSION = "ca-suspension"
    CA_REVOCATION = "ca-revocation"
    CA_NON_RENEWAL = "ca-non-renewal"
    INCIDENT = "incident"
    MAINTENANCE = "maintenance"


# The two languages of the web pages: Traditional Chinese is authoritative (CP annex 1.2).
NOTICE_LANGUAGES = ("zh-Hant", "en")
MAX_TITLE = 200
MAX_BODY = 20_000
# A page or a feed lists the newest notices, never an unbounded number.
MAX_LISTED = 50


@dataclass(frozen=True)
class NewNotice:
    """A notice checked by `check_notice`, ready to store. `starts` is when it takes effect
    (a maintenance window's start); `ends` is when a maintenance window or an incident ends."""

    kind: NoticeKind
    title: Mapping[str, str]  # by language: every language of NOTICE_LANGUAGES
    body: Mapping[str, str]
    starts: dt.datetime
    ends: dt.datetime | None


def parse_kind(text: str) -> NoticeKind:
    try:
        return NoticeKind(text)
    except ValueError:
        raise MalformedInput(f"unknown notice kind {text!r}; use one of "
                             f"{', '.join(k.value for k in NoticeKind)}") from None


def _check_text(value: str, what: str, limit: int, *, lines: bool) -> str:
    text = value.strip()
    if not text:
        raise MalformedInput(f"{what} is empty")
    if len(text) > limit:
        raise MalformedInput(f"{what} is longer than {limit} characters")
    allowed = {"\n"} if lines else set()
    for ch in text:
        # Control and format characters (bidi overrides among them) would let a notice
        # read otherwise than it was written.
        if ch not in allowed and unicodedata.category(ch) in ("Cc", "Cf"):
            raise MalformedInput(f"{what} holds the control character U+{ord(ch):04X}")
    return text


def _by_language(pairs: list[tuple[str, str]], what: str, limit: int, *, lines: bool) -> dict[str, str]:
    out: dict[str, str] = {}
    for lang, text in pairs:
        if lang not in NOTICE_LANGUAGES:
            raise MalformedInput(f"unknown language {lang!r} for the {what}; notices are written in "
                                 f"{' and '.join(NOTICE_LANGUAGES)}")
        if lang in out:
            raise MalformedInput(f"the {what} in {lang} is given twice")
        out[lang] = _check_text(text, f"the {what} in {lang}", limit, lines=lines)
    missing = [lang for lang in NOTICE_LANGUAGES if lang not in out]
    if missing:
        raise MalformedInput(f"the {what} in {' and '.join(missing)} is missing; a notice is published in "
                             f"{' and '.join(NOTICE_LANGUAGES)}")
    return out


def check_notice(*, kind: str, titles: list[tuple[str, str]], bodies: list[tuple[str, str]],
                 starts: dt.datetime, ends: dt.datetime | None) -> NewNotice:
    """Every check a notice must pass; MalformedInput names the value at fault."""
    k = parse_kind(kind)
    title = _by_language(titles, "title", MAX_TITLE, lines=False)
    body = _by_language(bodies, "body", MAX_BODY, lines=True)
    if ends is not None and ends <= starts:
        raise MalformedInput(f"the end {ends.isoformat()} is not after the start {starts.isoformat()}")
    if k is NoticeKind.MAINTENANCE and ends is None:
        raise MalformedInput("a maintenance notice needs its end (--end): the window it announces")
    return NewNotice(k, title, body, starts, ends)
