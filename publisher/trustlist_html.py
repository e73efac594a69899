"""The trust list as a bilingual HTML page: the authoritative, printable form (CP annex 1.2).

Pure: a `TrustList` and a language in, a page out, through the Jinja2 templates
`templates/trustlist*.html` with autoescaping on. The page shows every name in both
languages; the chosen language only sets the headings and the order. No script, no style
attribute: a stylesheet link is all the page asks the browser to fetch.
"""
from __future__ import annotations

import datetime as dt
import functools
from pathlib import Path

from cryptography import x509

from .errors import MalformedInput
from .trustlist import LANGUAGES, POLICY_OIDS, STATUS_NAMES, TYPE_NAMES, TrustList
from .trustlist_xml import SCHEME_NAME

TEMPLATES = Path(__file__).resolve().parent / "templates"

# Headings, per language. Traditional Chinese first: it is authoritative.
LABELS = {
    "zh-Hant": {
        "title": "符合互認條件的證書類別信任列表",
        "authoritative": "本列表以中文版本為準。",
        "other_language": "English",
        "seq": "列表序號",
        "issued": "發布日期",
        "next_update": "下次更新",
        "operator": "計劃營運者",
        "xml": "機讀版本（已簽署的 XML）",
        "earlier": "歷次列表",
        "entries": "列表項目",
        "ca": "簽發機構",
        "fingerprint": "證書 SHA-256 指紋",
        "type": "證書類別",
        "policies": "證書策略對象標識符",
        "name": "名稱",
        "status": "狀態",
        "since": "生效日期",
        "history": "狀態歷史",
        "cps": "電子認證業務規則",
        "none": "目前沒有項目。",
        "stale": "此列表已過下次更新日期，請查閱最新版本。",
        "superseded": "此為歷次列表之一；現行列表：",
        "list": "列表",
        "current": "現行列表",
    },
    "en": {
        "title": "Trust list of certificate types qualifying for mutual recognition",
        "authoritative": "The Chinese version of this list is authoritative.",
        "other_language": "中文",
        "seq": "Sequence number",
        "issued": "Issued",
        "next_update": "Next update",
        "operator": "Scheme operator",
        "xml": "Machine-readable version (signed XML)",
        "earlier": "All lists issued",
        "entries": "Entries",
        "ca": "Issuing CA",
        "fingerprint": "Certificate SHA-256 fingerprint",
        "type": "Certificate type",
        "policies": "Certificate policy OIDs",
        "name": "Name",
        "status": "Status",
        "since": "since",
        "history": "Status history",
        "cps": "Certification practice statement",
        "none": "No entries at present.",
        "stale": "This list is past its next update: look for a newer one.",
        "superseded": "This is one of the lists issued; the current list:",
        "list": "List",
        "current": "Current list",
    },
}

OIDS_BY_AUTHORITY = {POLICY_OIDS[t][i]: who for t in POLICY_OIDS
                     for i, who in enumerate(("MIIT 工信部", "OGCIO 資科辦")[:len(POLICY_OIDS[t])])}


@functools.cache
def _env():
    # Imported here: only serving renders pages, the commands never do.
    import jinja2

    return jinja2.Environment(loader=jinja2.FileSystemLoader(str(TEMPLATES)), autoescape=True,
                              undefined=jinja2.StrictUndefined, trim_blocks=True, lstrip_blocks=True)


def _when(t: dt.datetime) -> str:
    return t.astimezone(dt.timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")


def render(tl: TrustList, lang: str, *, base_url: str, current: bool, now: dt.datetime | None = None,
           lists: list[tuple[int, dt.datetime]] = ()) -> str:
    """The page of list `tl` in `lang` (zh-Hant or en). `current` pages link to every list
    issued (`lists`: seq, issue date) and warn when `now` is past the next update; a
    numbered page is the same whenever it is asked for."""
    subjects = {e.ca_name: x509.load_der_x509_certificate(e.ca_cert_der).subject.rfc4514_string()
                for e in tl.entries}
    other = LANGUAGES[1] if lang == LANGUAGES[0] else LANGUAGES[0]
    page = "trustlist/" if current else f"trustlist/{tl.seq}/"
    return _env().get_template("trustlist.html").render(
        lang=lang, other=other, t=LABELS[lang], tl=tl, base=base_url, page=page, current=current,
        stale=current and now is not None and now > tl.next_update,
        scheme_name=dict(SCHEME_NAME), subjects=subjects, when=_when, type_names=TYPE_NAMES,
        status_names=STATUS_NAMES, authorities=OIDS_BY_AUTHORITY, lists=list(lists))


def negotiate(query: str | None, accept_language: str | None) -> str:
    """The page language: `?lang=` when given (MalformedInput if it is not one we publish),
    else the best of Accept-Language (any Chinese tag reads the Traditional Chinese page),
    else Traditional Chinese, the authoritative one."""
    if query is not None:
        if query not in LANGUAGES:
            raise MalformedInput(f"no page in language {query[:40]!r}; languages: {', '.join(LANGUAGES)}")
        return query
    best, best_q = LANGUAGES[0], 0.0
    for i, part in enumerate((accept_language or "").split(",")[:32]):
        tag, _, params = part.strip().partition(";")
        tag = tag.strip().lower()
        q = 1.0
        for param in params.split(";"):
            key, _, value = param.strip().partition("=")
            if key.strip().lower() == "q":
                try:
                    q = float(value)
                except ValueError:
                    q = 0.0
                if not 0.0 <= q <= 1.0:  # also NaN
                    q = 0.0
        if tag == "zh" or tag.startswith("zh-"):
            lang = "zh-Hant"
        elif tag == "en" or tag.startswith("en-"):
            lang = "en"
        else:
            continue
        if q > best_q:
            best, best_q = lang, q
    return best
