"""The notices as an Atom feed (RFC 4287), in one of the page languages.

Pure: notices and a time in, bytes out. Built with ElementTree so that every text is
escaped by the serializer, never by hand.
"""
from __future__ import annotations

import datetime as dt
import xml.etree.ElementTree as ET
from typing import Sequence
from urllib.parse import urlsplit

from .store import NoticeRecord

ATOM_NS = "http://www.w3.org/2005/Atom"
XML_LANG = "{http://www.w3.org/XML/1998/namespace}lang"

FEED_TITLE = {"zh-Hant": "憑證儲存庫公告", "en": "Certificate repository notices"}
KIND_LABEL = {
    "zh-Hant": {"ca-suspension": "核證機關證書暫停", "ca-revocation": "核證機關證書撤銷",
                "ca-non-renewal": "核證機關證書不予續期", "incident": "事故", "maintenance": "計劃維護"},
    "en": {"ca-suspension": "CA certificate suspension", "ca-revocation": "CA certificate revocation",
           "ca-non-renewal": "CA certificate non-renewal", "incident": "Incident", "maintenance": "Scheduled maintenance"},
}


def _time(when: dt.datetime) -> str:
    return when.astimezone(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def notice_tag(base_url: str, notice: NoticeRecord) -> str:
    """A permanent id (RFC 4151 tag URI): the host and the day the notice was published."""
    host = urlsplit(base_url).hostname or "localhost"
    return f"tag:{host},{notice.published_at.strftime('%Y-%m-%d')}:notice/{notice.id}"


def feed(notices: Sequence[NoticeRecord], *, lang: str, base_url: str, now: dt.datetime) -> bytes:
    """The feed of `notices` (newest first) in `lang`; `now` dates an empty feed."""
    ET.register_namespace("", ATOM_NS)

    def sub(parent: ET.Element, tag: str, text: str | None = None, **attrs: str) -> ET.Element:
        e = ET.SubElement(parent, f"{{{ATOM_NS}}}{tag}", attrs)
        if text is not None:
            e.text = text
        return e

    root = ET.Element(f"{{{ATOM_NS}}}feed", {XML_LANG: lang})
    sub(root, "id", f"{base_url}/notices.atom")
    sub(root, "title", FEED_TITLE[lang])
    updated = max((n.published_at for n in notices), default=now)
    sub(root, "updated", _time(updated))
    sub(root, "link", rel="self", type="application/atom+xml", href=f"{base_url}/notices.atom?lang={lang}")
    sub(root, "link", rel="alternate", type="text/html", href=f"{base_url}/?lang={lang}")
    author = sub(root, "author")
    sub(author, "name", FEED_TITLE[lang])
    for n in notices:
        entry = sub(root, "entry")
        sub(entry, "id", notice_tag(base_url, n))
        sub(entry, "title", n.title[lang], type="text")
        sub(entry, "published", _time(n.published_at))
        sub(entry, "updated", _time(n.published_at))
        sub(entry, "link", rel="alternate", type="text/html", href=f"{base_url}/?lang={lang}#notice-{n.id}")
        sub(entry, "category", term=n.kind, label=KIND_LABEL[lang].get(n.kind, n.kind))
        when = _time(n.starts) + (f" – {_time(n.ends)}" if n.ends else "")
        sub(entry, "content", f"{when}\n\n{n.body[lang]}", type="text")
    return ET.tostring(root, encoding="utf-8", xml_declaration=True)
