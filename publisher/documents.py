"""Disclosure documents: the CPS with every earlier version, the CP, the agreements and the
PKI disclosure statement (CPS 2.5, 8; CP 四.9).

Pure: what a document is, the checks a publication must pass, where it lives
(`documents/<kind>/<version>/<lang>.<ext>`) and how a path is read back. No I/O.
"""
from __future__ import annotations

import datetime as dt
import io
import re
from dataclasses import dataclass

from .errors import MalformedInput, NotFound

# The kinds the CP and CPS name; `[documents] kinds` adds others.
DEFAULT_KINDS = ("cps", "cp", "subscriber-agreement", "relying-party-agreement", "pds")
# Traditional Chinese is authoritative (CPS, CP annex 1.2); English and Simplified Chinese
# are the translations the mutual-recognition scheme uses.
LANGUAGES = ("zh-Hant", "en", "zh-Hans")
MEDIA_TYPES = {"pdf": "application/pdf", "html": "text/html; charset=utf-8"}

KIND_RE = re.compile(r"^[a-z][a-z0-9-]{0,39}$")
# A version is a URL segment of its own: no slash, no dot-only names, bounded.
VERSION_RE = re.compile(r"^[0-9A-Za-z][0-9A-Za-z._-]{0,31}$")
OID_RE = re.compile(r"^[0-2](\.(0|[1-9][0-9]{0,19})){1,63}$")
MAX_BYTES = 64 * 1024 * 1024


@dataclass(frozen=True)
class NewDocument:
    """A document to publish, checked by `check_document`."""

    kind: str
    version: str
    lang: str
    effective: dt.date
    oid: str | None
    ext: str  # pdf or html, from the contents
    data: bytes


@dataclass(frozen=True)
class DocumentPath:
    kind: str
    version: str
    lang: str
    ext: str

    @property
    def relative(self) -> str:
        return f"documents/{self.kind}/{self.version}/{self.lang}.{self.ext}"


def check_kind(kind: str, kinds: tuple[str, ...]) -> str:
    if kind not in kinds:
        raise MalformedInput(f"unknown document kind {kind!r}; configured kinds: {', '.join(kinds)}")
    return kind


def check_lang(lang: str) -> str:
    if lang not in LANGUAGES:
        raise MalformedInput(f"unknown language {lang!r}; use one of {', '.join(LANGUAGES)}")
    return lang


def check_version(version: str) -> str:
    if not VERSION_RE.match(version) or set(version) <= {"."}:
        raise MalformedInput(f"version {version!r} must be 1 to 32 letters, digits, '.', '_' or '-', "
                             f"starting with a letter or digit")
    return version


def check_oid(oid: str) -> str:
    if not OID_RE.match(oid):
        raise MalformedInput(f"{oid!r} is not an OID (dotted decimal, e.g. 1.3.6.1.4.1.16030.1.8.2)")
    return oid


def media_ext(data: bytes, source: str) -> str:
    """`pdf` or `html`, from the contents; MalformedInput, naming `source`, when the file is
    empty or is not what its contents or its name say it is."""
    if not data:
        raise MalformedInput(f"{source}: the file is empty")
    if len(data) > MAX_BYTES:
        raise MalformedInput(f"{source}: larger than {MAX_BYTES // (1024 * 1024)} MiB")
    if data.startswith(b"%PDF-") or source.lower().endswith(".pdf"):
        check_pdf(data, source)
        return "pdf"
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as e:
        raise MalformedInput(f"{source}: neither a PDF nor UTF-8 HTML (byte {e.start} is not UTF-8)") from None
    if not re.search(r"<html[\s>]", text, re.I):
        raise MalformedInput(f"{source}: neither a PDF nor HTML (no <html element)")
    return "html"


def check_pdf(data: bytes, source: str) -> None:
    """A PDF a reader can open: the header, the end-of-file marker, and a parse of the
    cross-reference table and page tree. Publishing a broken CPS would be worse than none."""
    if not data.startswith(b"%PDF-"):
        raise MalformedInput(f"{source}: not a PDF (no %PDF- header)")
    if b"%%EOF" not in data[-1024:]:
        raise MalformedInput(f"{source}: not a whole PDF (no %%EOF at the end: truncated?)")
    # Imported here: only publishing needs it, not the server or the other commands.
    import pypdf
    from pypdf.errors import PyPdfError

    try:
        reader = pypdf.PdfReader(io.BytesIO(data), strict=True)
        pages = len(reader.pages)
    except PyPdfError as e:
        raise MalformedInput(f"{source}: not a readable PDF ({e})") from None
    except Exception as e:  # noqa: BLE001 - on a damaged file the parser fails in many ways; each means unreadable
        raise MalformedInput(f"{source}: not a readable PDF ({type(e).__name__}: {e})") from None
    if pages < 1:
        raise MalformedInput(f"{source}: the PDF has no pages")


def check_document(*, kind: str, version: str, lang: str, effective: dt.date, oid: str | None,
                   data: bytes, source: str, kinds: tuple[str, ...]) -> NewDocument:
    """Every check that needs nothing but the document itself; the store checks it against
    the versions already published."""
    check_kind(kind, kinds)
    check_version(version)
    check_lang(lang)
    if oid is not None:
        check_oid(oid)
    return NewDocument(kind, version, lang, effective, oid, media_ext(data, source), data)


def parse_document_path(kind: str, version: str, file: str) -> DocumentPath:
    """Read `/documents/<kind>/<version>/<lang>.<ext>`; MalformedInput for a path no
    publication could have (the caller answers 400), so a lookup only follows a valid one."""
    if not KIND_RE.match(kind):
        raise MalformedInput(f"{kind!r} is not a document kind")
    if not VERSION_RE.match(version) or set(version) <= {"."}:
        raise MalformedInput(f"{version!r} is not a document version")
    lang, dot, ext = file.rpartition(".")
    if not dot or ext not in MEDIA_TYPES:
        raise MalformedInput(f"{file!r}: a document is <lang>.pdf or <lang>.html")
    if lang not in LANGUAGES:
        raise NotFound(f"no documents in language {lang!r}; languages: {', '.join(LANGUAGES)}")
    return DocumentPath(kind, version, lang, ext)
