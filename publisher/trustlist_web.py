"""The trust list over HTTP: the bilingual page of the current list and of every earlier
one, the signed XML of each, and an index.

A front-end like the others: `setup(app, settings, *, service, clock, base_url)` registers
the routes and returns the URL lines `pkirepo serve` prints. A numbered list never changes:
its XML is the stored signed bytes, served with a strong ETag and cached for good.
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass, field

from aiohttp import hdrs, web

from . import trustlist_html, trustlist_xml
from .clock import Clock, http_date
from .errors import NotFound
from .store import TrustListRecord
from .trustlist import TrustList, parse_seq
from .trustlist_html import TEMPLATES
from .trustlist_service import TrustListService
from .trustlist_settings import TrustListSettings

IMMUTABLE = "public, max-age=31536000, immutable"
# Parsed lists by digest: a published list never changes, and few are asked for often.
_PARSED_MAX = 64


@dataclass
class TrustListDeps:
    service: TrustListService
    clock: Clock
    base_url: str
    parsed: dict[str, TrustList] = field(default_factory=dict)


DEPS = web.AppKey("trustlist_web", TrustListDeps)


def setup(app: web.Application, settings: TrustListSettings | None, *, service: TrustListService | None,
          clock: Clock, base_url: str) -> list[str]:
    """Register the trust list's routes when the config has a `[trustlist]` section."""
    if settings is None or service is None:
        return []
    base = base_url.rstrip("/")
    app[DEPS] = TrustListDeps(service, clock, base)
    for path, handler in [
        ("/trustlist", redirect),
        ("/trustlist/", current_page),
        ("/trustlist/current.xml", current_xml),
        ("/trustlist/index.json", index_json),
        ("/trustlist/trustlist.css", stylesheet),
        ("/trustlist/{file}", numbered_xml),
        ("/trustlist/{seq}/", numbered_page),
    ]:
        app.router.add_get(path, handler)
    return [f"trust list:   {base}/trustlist/  (XML: {base}/trustlist/current.xml)"]


def _parsed(deps: TrustListDeps, rec: TrustListRecord, xml: bytes) -> TrustList:
    found = deps.parsed.get(rec.sha256)
    if found is None:
        found = trustlist_xml.parse_xml(xml)
        if len(deps.parsed) >= _PARSED_MAX:
            deps.parsed.pop(next(iter(deps.parsed)))
        deps.parsed[rec.sha256] = found
    return found


def _matches(request: web.Request, tag: str) -> bool:
    tags = request.if_none_match
    return tags is not None and any(t.value in ("*", tag) for t in tags)


def _answer(request: web.Request, body: bytes, content_type: str, headers: dict[str, str]) -> web.Response:
    tag = hashlib.sha256(body).hexdigest()
    headers = {**headers, "ETag": f'"{tag}"', "X-Content-Type-Options": "nosniff"}
    if _matches(request, tag):
        return web.Response(status=304, headers=headers)
    return web.Response(body=body, headers={**headers, "Content-Type": content_type})


async def redirect(request: web.Request) -> web.Response:
    raise web.HTTPMovedPermanently(location="/trustlist/")


async def _page(request: web.Request, seq: int | None) -> web.Response:
    deps = request.app[DEPS]
    lang = trustlist_html.negotiate(request.query.get("lang"), request.headers.get(hdrs.ACCEPT_LANGUAGE))
    rec, xml = await deps.service.get(seq)
    tl = _parsed(deps, rec, xml)
    current = seq is None
    lists = [(r.seq, r.issued_at) for r in await deps.service.records()] if current else []
    text = trustlist_html.render(tl, lang, base_url=deps.base_url, current=current, now=deps.clock.now(),
                                 lists=lists)
    headers = {"Content-Language": lang, "Vary": "Accept-Language",
               "Cache-Control": "no-cache" if current else IMMUTABLE,
               "Last-Modified": http_date(rec.issued_at)}
    return _answer(request, text.encode(), "text/html; charset=utf-8", headers)


async def current_page(request: web.Request) -> web.Response:
    return await _page(request, None)


async def numbered_page(request: web.Request) -> web.Response:
    return await _page(request, parse_seq(request.match_info["seq"]))


def _xml(request: web.Request, rec: TrustListRecord, xml: bytes, cache: str) -> web.Response:
    headers = {"Cache-Control": cache, "Last-Modified": http_date(rec.issued_at), "ETag": f'"{rec.sha256}"',
               "X-Content-Type-Options": "nosniff"}
    if _matches(request, rec.sha256):
        return web.Response(status=304, headers=headers)
    return web.Response(body=xml, headers={**headers, "Content-Type": "application/xml"})


async def current_xml(request: web.Request) -> web.Response:
    rec, xml = await request.app[DEPS].service.get(None)
    # Revalidated on every use: a new list must reach relying parties at once.
    return _xml(request, rec, xml, "no-cache")


async def numbered_xml(request: web.Request) -> web.Response:
    file = request.match_info["file"]
    if not file.endswith(".xml"):
        raise NotFound(f"no such trust list file: {file[:60]!r} (lists are <sequence number>.xml)")
    rec, xml = await request.app[DEPS].service.get(parse_seq(file[:-4]))
    return _xml(request, rec, xml, IMMUTABLE)


async def index_json(request: web.Request) -> web.Response:
    deps = request.app[DEPS]
    base = deps.base_url
    records = await deps.service.records()
    return web.json_response({"lists": [{
        "seq": r.seq,
        "issued": r.issued_at.isoformat(),
        "next_update": r.next_update.isoformat(),
        "sha256": r.sha256,
        "size": r.size,
        "xml": f"{base}/trustlist/{r.seq}.xml",
        "html": f"{base}/trustlist/{r.seq}/",
    } for r in records], "current": records[-1].seq if records else None},
        headers={"Cache-Control": "no-cache"})


_CSS = (TEMPLATES / "trustlist.css").read_bytes()


async def stylesheet(request: web.Request) -> web.Response:
    return _answer(request, _CSS, "text/css; charset=utf-8", {"Cache-Control": "public, max-age=86400"})
