"""The two languages of the web pages and how a request picks one.

Traditional Chinese is the authoritative language (CP annex 1.2) and the default; English is
the translation. A `lang` query parameter (the language switch's links) wins over the
browser's `Accept-Language`. Pure: no I/O.
"""
from __future__ import annotations

PAGE_LANGUAGES = ("zh-Hant", "en")
DEFAULT_LANGUAGE = "zh-Hant"
# Accept-Language is read up to this many entries: a longer header is a client's problem,
# not work for us.
MAX_RANGES = 32


def _match(tag: str) -> str | None:
    """The page language a language range asks for, or None."""
    t = tag.strip().lower()
    if t == "*":
        return DEFAULT_LANGUAGE
    primary = t.split("-", 1)[0]
    if primary == "en":
        return "en"
    # Any Chinese, Simplified too: a reader of zh-Hans reads zh-Hant more easily than English.
    if primary == "zh":
        return "zh-Hant"
    return None


def from_accept_language(header: str | None) -> str | None:
    """The page language the header prefers most (RFC 9110 §12.5.4 q-values), or None."""
    if not header:
        return None
    best: tuple[float, int, str] | None = None
    for i, item in enumerate(header.split(",")[:MAX_RANGES]):
        tag, _, params = item.partition(";")
        q = 1.0
        for p in params.split(";"):
            name, _, value = p.strip().partition("=")
            if name.strip().lower() == "q":
                try:
                    q = float(value.strip())
                except ValueError:
                    q = 0.0
                if not 0.0 <= q <= 1.0:  # also NaN
                    q = 0.0
        lang = _match(tag)
        if lang is None or q <= 0.0:
            continue
        key = (q, -i, lang)
        if best is None or key[:2] > best[:2]:
            best = key
    return None if best is None else best[2]


def choose(query_lang: str | None, accept_language: str | None) -> str:
    """The language of a page: `?lang=` when it names a page language, else the browser's
    preference, else the default. An unknown `lang` value is ignored, not an error."""
    if query_lang in PAGE_LANGUAGES:
        return query_lang
    return from_accept_language(accept_language) or DEFAULT_LANGUAGE
