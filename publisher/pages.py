"""The repository's web pages, rendered from Jinja2 templates (publisher/templates/) with
autoescaping on: the home page, the relying parties' guide and the disclosure record, each
in zh-Hant or English.

Pure: plain values in, HTML text out. The templates are package data, read once when the
environment is first used; the aiohttp handlers that gather the values live in http.py.
"""
from __future__ import annotations

import datetime as dt
import functools
from dataclasses import dataclass
from typing import Sequence

import jinja2
from cryptography import x509
from cryptography.hazmat.primitives import hashes

from .atom import KIND_LABEL
from .i18n import PAGE_LANGUAGES
from .maintenance import Window
from .notices import NoticeKind
from .store import CrlRecord, DocumentRecord, NoticeRecord

# The header every page is served with: no script at all, styles and images only from the
# site itself, no framing, no forms.
CONTENT_SECURITY_POLICY = ("default-src 'none'; style-src 'self'; img-src 'self'; base-uri 'none'; "
                           "form-action 'none'; frame-ancestors 'none'")
# The policy documents the home page names, in this order.
POLICY_KINDS = ("cps", "cp")


@functools.cache
def environment() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.PackageLoader("publisher", "templates"),
        autoescape=True,  # every template, whatever its name
        undefined=jinja2.StrictUndefined,  # a missing value is a bug to see, not an empty cell
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["utc"] = _utc
    env.filters["size"] = _size
    return env


def _utc(when: dt.datetime | dt.date | None) -> str:
    if when is None:
        return ""
    if isinstance(when, dt.datetime):
        return when.astimezone(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    return when.isoformat()


def _size(n: int) -> str:
    return f"{n:,} B" if n < 10_000 else f"{n / 1024:,.1f} KiB"


@dataclass(frozen=True)
class CaView:
    name: str
    subject: str
    issuer: str
    not_before: dt.datetime
    not_after: dt.datetime
    sha256: str  # colon-separated upper-case hex, as browsers show it


def ca_view(name: str, cert: x509.Certificate) -> CaView:
    digest = cert.fingerprint(hashes.SHA256()).hex().upper()
    return CaView(name, cert.subject.rfc4514_string(), cert.issuer.rfc4514_string(), cert.not_valid_before_utc,
                  cert.not_valid_after_utc, ":".join(digest[i:i + 2] for i in range(0, len(digest), 2)))


@dataclass(frozen=True)
class CrlView:
    name: str
    kind: str  # full, partition, arl
    issuer: str
    record: CrlRecord
    http_url: str
    ldap_url: str | None
    current: bool  # nextUpdate still ahead


@dataclass(frozen=True)
class MaintenanceWindow:
    starts: dt.datetime
    ends: dt.datetime | None  # None: emergency maintenance under way, until it is ended
    title: str
    notice_id: int | None  # the notice announcing it, if one does


@dataclass(frozen=True)
class ServiceStatus:
    """What the home page says about the service: whether every CRL is current, and the
    maintenance windows announced."""

    crls_current: bool
    stale_crls: tuple[str, ...]
    maintenance: tuple[MaintenanceWindow, ...]


def announced_maintenance(notices: Sequence[NoticeRecord], lang: str, now: dt.datetime,
                          windows: Sequence[Window] = ()) -> list[MaintenanceWindow]:
    """The maintenance windows not yet over: those of the maintenance schedule (`pkirepo
    maintenance`, CPS 2.5), and those announced by maintenance notices. A window a notice
    announces (same start) is shown once, with the notice's bilingual title."""
    out = [MaintenanceWindow(n.starts, n.ends, n.title[lang], n.id) for n in notices
           if n.kind == NoticeKind.MAINTENANCE.value and n.ends is not None and n.ends > now]
    noticed = {w.starts for w in out}
    out += [MaintenanceWindow(w.start, w.end, w.reason, None) for w in windows
            if w.counts and (w.end is None or w.end > now) and w.start not in noticed]
    return sorted(out, key=lambda w: w.starts)


def service_status(crls: Sequence[CrlView], maintenance: Sequence[MaintenanceWindow]) -> ServiceStatus:
    stale = tuple(c.name for c in crls if not c.current)
    return ServiceStatus(not stale, stale, tuple(maintenance))


def current_documents(records: Sequence[DocumentRecord]) -> list[DocumentRecord]:
    """The current version of the CPS and the CP in each language: the last published
    (publication refuses an effective date before the current one)."""
    current: dict[tuple[str, str], DocumentRecord] = {}
    for d in records:
        if d.kind in POLICY_KINDS:
            current[(d.kind, d.lang)] = d
    return sorted(current.values(), key=lambda d: (POLICY_KINDS.index(d.kind), d.lang != "zh-Hant", d.lang))


def _common(lang: str, path: str) -> dict:
    if lang not in PAGE_LANGUAGES:
        raise ValueError(f"not a page language: {lang!r}")
    return {"lang": lang, "en": lang == "en", "path": path, "kind_label": KIND_LABEL[lang],
            "other": [(code, label) for code, label in (("zh-Hant", "中文"), ("en", "English")) if code != lang]}


def render_home(*, lang: str, cas: Sequence[CaView], crls: Sequence[CrlView], ocsp_url: str | None,
                documents: Sequence[DocumentRecord], notices: Sequence[NoticeRecord], status: ServiceStatus,
                now: dt.datetime) -> str:
    return environment().get_template("home.html").render(
        **_common(lang, "/"), cas=cas, crls=crls, ocsp_url=ocsp_url, documents=documents, notices=notices,
        status=status, now=now)


def render_relying_parties(*, lang: str, base_url: str, ocsp_url: str | None, full_crl: str | None) -> str:
    return environment().get_template("relying_parties.html").render(
        **_common(lang, "/relying-parties"), base_url=base_url, ocsp_url=ocsp_url, full_crl=full_crl)


def render_documents(*, lang: str, records: Sequence[DocumentRecord], base_url: str) -> str:
    return environment().get_template("documents.html").render(
        **_common(lang, "/documents/"), records=records, base_url=base_url)
