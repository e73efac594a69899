"""The repository over HTTP: CRLs, ARLs and their archive, CA certificates and chains,
subscriber certificates, and the liveness check.

A front-end like OCSP and LDAP: `setup(app, settings, *, repository, publication, clock)`
registers the routes and returns the URL lines `pkirepo serve` prints. Handlers reach only
what setup was given, kept under this module's own app key.
"""
from __future__ import annotations

import datetime as dt
import email.utils
import json
import logging
import re
from dataclasses import dataclass
from importlib import resources
from typing import Any, Awaitable, Callable

from aiohttp import hdrs, web
from cryptography.hazmat.primitives.serialization import Encoding, pkcs7

from . import atom, httpedge, i18n, maintenance, pages
from .clock import Clock, http_date
from .config import NAME_RE, HttpSettings
from .documents import parse_document_path
from .errors import MalformedInput, NotFound, RepoError
from .health import PublicationHealth
from .metrics import Metrics
from .readiness import Readiness
from .looplag import LoopLag
from .publication import Publication
from .service import Repository
from .notices import MAX_LISTED
from .store import CrlRecord, DocumentRecord

log = logging.getLogger("pkirepo.http")

SERIAL_RE = re.compile(r"^[0-9A-Fa-f]{1,40}$")
NUMBER_RE = re.compile(r"^[0-9]{1,49}$")


@dataclass(frozen=True)
class HttpDeps:
    settings: HttpSettings
    repository: Repository
    publication: Publication
    clock: Clock
    health: PublicationHealth
    readiness: Readiness | None = None
    status: Callable[[dt.datetime], Awaitable[dict]] | None = None
    loop_probe: LoopLag | None = None
    # The web pages name these: the OCSP URL, and a CRL's ldap:// URL (None: LDAP is off).
    ocsp_url: str | None = None
    crl_ldap_url: Callable[[CrlRecord], str | None] | None = None
    stylesheet: bytes = b""


DEPS = web.AppKey("publisher_http", HttpDeps)


def setup(app: web.Application, settings: HttpSettings, *, repository: Repository,
          publication: Publication, clock: Clock, health: PublicationHealth | None = None,
          readiness: Readiness | None = None, status: Callable[[dt.datetime], Awaitable[Any]] | None = None,
          metrics: Metrics | None = None, loop_probe: LoopLag | None = None, ocsp_url: str | None = None,
          crl_ldap_url: Callable[[CrlRecord], str | None] | None = None) -> list[str]:
    """Register the repository's routes; returns the URL lines it serves. `health` is what
    the publication loop reports (`/healthz/publication`); with `readiness`, `status` and
    `metrics` it also serves `/readyz`, `/status` and `/metrics`; `loop_probe`, when given,
    is served read-only at `/healthz/loop`; `ocsp_url` and `crl_ldap_url` are what the web
    pages name for OCSP and for each CRL over LDAP."""
    stylesheet = resources.files("publisher").joinpath("static", "site.css").read_bytes()
    app[DEPS] = HttpDeps(settings, repository, publication, clock, health or PublicationHealth(), readiness, status,
                         loop_probe=loop_probe, ocsp_url=ocsp_url, crl_ldap_url=crl_ldap_url, stylesheet=stylesheet)
    # These routes read no body; one announced with Expect is refused before it is sent if
    # it is larger than any the server reads.
    expect = httpedge.expect_handler(httpedge.MAX_BODY_BYTES)
    for path, handler in [
        ("/", home),
        ("/healthz", healthz),
        ("/healthz/publication", healthz_publication),
        ("/healthz/loop", healthz_loop),
        ("/crl/", crl_index),
        ("/crl/archive/{name}/", archive_index),
        ("/crl/archive/{name}/{file}", archive_crl),
        ("/crl/{file}", get_crl),
        ("/ca/{file}", get_ca),
        ("/certs/{issuer}/{file}", get_cert),
        ("/documents/", documents_index),
        ("/documents/index.json", documents_json),
        ("/documents/{kind}/{version}/{file}", get_document),
        ("/relying-parties", relying_parties),
        ("/cps", current_cps),
        ("/notices.atom", notices_feed),
        ("/static/site.css", stylesheet_file),
    ]:
        app.router.add_get(path, handler, expect_handler=expect)
    ops_lines = []
    if readiness is not None:
        app.router.add_get("/readyz", readyz, expect_handler=expect)
        ops_lines.append(f"readiness:    {settings.base_url}/readyz")
    if status is not None:
        app.router.add_get("/status", status_json, expect_handler=expect)
        ops_lines.append(f"status:       {settings.base_url}/status")
    if metrics is not None:
        app.router.add_get("/metrics", metrics.handler, expect_handler=expect)
        ops_lines.append(f"metrics:      {settings.base_url}/metrics")
    base = settings.base_url
    lines = [f"CRL index:    {base}/crl/"]
    lines += [f"CA:           {base}/ca/{name}.cer  {base}/ca/{name}.p7c" for name in repository.ca_names]
    lines += [f"certificates: {base}/certs/<issuer>/<serial-hex>.cer"]
    lines += [f"documents:    {base}/documents/  (JSON: {base}/documents/index.json)"]
    lines += [f"web pages:    {base}/  {base}/relying-parties  notices: {base}/notices.atom"]
    return lines + ops_lines


@web.middleware
async def errors_middleware(request: web.Request, handler):
    """Domain errors become their HTTP status with a one-line reason; anything unexpected
    is logged and answered 500 without detail. The one mapping for every route of the app:
    the composition root installs it when it creates the application.

    Two failures come from the client, not from us, however deep in a handler they surface:
    a body that cannot be decoded is a 400, and a client that closes the connection before
    its request is complete is one line in the log (its answer is never delivered)."""
    try:
        return await handler(request)
    except web.HTTPException:
        raise
    except RepoError as e:
        return _domain_error(request, e)
    except Exception as e:
        reason = httpedge.body_unreadable(e)
        if reason is not None:
            return _domain_error(request, MalformedInput(f"the request body cannot be read: {reason}"))
        if httpedge.client_went_away(request, e):
            log.info("%s %s from %s: the client closed the connection before the request was complete",
                     request.method, request.path, request.remote)
            return web.Response(status=400, text="request incomplete\n")
        log.exception("unexpected error answering %s %s", request.method, request.path)
        return web.Response(status=500, text="internal error\n")


def _domain_error(request: web.Request, e: RepoError) -> web.Response:
    if e.http_status >= 500:
        log.exception("error answering %s %s", request.method, request.path)
        text = "internal error" if e.http_status == 500 else e.message
    else:
        text = e.message
    return web.Response(status=e.http_status, text=text + "\n")


def _name(value: str, what: str) -> str:
    """A path segment that must be a publication name; 400 otherwise."""
    if not NAME_RE.match(value):
        raise MalformedInput(f"{value!r} is not a valid {what} name")
    return value


def _split(value: str, suffix: str, what: str) -> str:
    if not value.endswith(suffix):
        raise NotFound(f"no such {what}: {value!r} (names end in {suffix})")
    return _name(value[: -len(suffix)], what)


def _if_modified_since(request: web.Request) -> dt.datetime | None:
    """The If-Modified-Since date, or None when absent or not a valid HTTP-date.

    RFC 9110 §13.1.3: a recipient ignores an If-Modified-Since that is not a valid date, so
    a value out of range (year 99999999999, a 31 February) is treated as absent rather than
    failing the request. Parsed here rather than by aiohttp, whose parser lets the overflow
    of a huge year escape."""
    value = request.headers.get(hdrs.IF_MODIFIED_SINCE)
    if not value:
        return None
    try:
        when = email.utils.parsedate_to_datetime(value)
        if when.tzinfo is None:  # "-0000": UTC by RFC 5322
            when = when.replace(tzinfo=dt.timezone.utc)
        return when.astimezone(dt.timezone.utc)
    except (TypeError, ValueError, OverflowError, IndexError):
        return None


def _not_modified(request: web.Request, sha256: str, last_modified: dt.datetime) -> bool:
    # aiohttp parses If-None-Match (lists, weak tags, *); its values come without quotes.
    # Anything it cannot read as an entity tag is skipped, so a malformed list matches nothing.
    tags = request.if_none_match
    if tags is not None:
        return any(t.value in ("*", sha256) for t in tags)
    ims = _if_modified_since(request)
    return ims is not None and last_modified <= ims


def _crl_response(request: web.Request, der: bytes, rec: CrlRecord, *, immutable: bool = False) -> web.StreamResponse:
    deps = request.app[DEPS]
    now = deps.clock.now()
    max_age = deps.settings.max_age
    if immutable:
        cache = "public, max-age=31536000, immutable"  # an archived CRL never changes
    else:
        # Never let a cache keep a CRL past its nextUpdate.
        left = int((rec.next_update - now).total_seconds())
        cache = f"public, max-age={max(0, min(left, max_age))}"
    headers = {
        "ETag": f'"{rec.sha256}"',
        "Last-Modified": http_date(rec.this_update),
        "Cache-Control": cache,
    }
    if not immutable:
        headers["Expires"] = http_date(min(rec.next_update, now + dt.timedelta(seconds=max_age)))
    if _not_modified(request, rec.sha256, rec.this_update):
        return web.Response(status=304, headers=headers)
    return web.Response(body=der, content_type="application/pkix-crl", headers=headers)


async def get_crl(request: web.Request) -> web.StreamResponse:
    name = _split(request.match_info["file"], ".crl", "CRL")
    deps = request.app[DEPS]
    pub = deps.publication.crls.get(name)
    if pub is None:
        raise NotFound(f"no CRL named {name!r}")
    if not pub.served(deps.clock.now()):
        raise NotFound(f"{name}: its CA was retired and its last CRL lapsed (it stays in /crl/archive/{name}/)")
    return _crl_response(request, pub.der, pub.record)


async def crl_index(request: web.Request) -> web.Response:
    deps = request.app[DEPS]
    return web.json_response({"crls": deps.publication.index(deps.settings.base_url, deps.clock.now())}, dumps=_dumps)


async def archive_index(request: web.Request) -> web.Response:
    deps = request.app[DEPS]
    name = _name(request.match_info["name"], "CRL")
    base = deps.settings.base_url
    records = await deps.repository.archive(name)
    return web.json_response({
        "name": name,
        "retention_days": deps.repository.archive_retention.days,
        "crls": [{
            "crl_number": r.number,
            "this_update": r.this_update.isoformat(),
            "next_update": r.next_update.isoformat(),
            "entries": r.entries,
            "size": r.size,
            "sha256": r.sha256,
            "source": r.source,
            "url": f"{base}/crl/archive/{name}/{r.number}.crl",
        } for r in records],
    }, dumps=_dumps)


async def archive_crl(request: web.Request) -> web.StreamResponse:
    name = _name(request.match_info["name"], "CRL")
    number_text = _split(request.match_info["file"], ".crl", "archived CRL")
    if not NUMBER_RE.match(number_text):
        raise MalformedInput(f"{number_text!r} is not a CRL number (decimal digits)")
    rec, der = await request.app[DEPS].repository.archived_crl(name, int(number_text))
    return _crl_response(request, der, rec, immutable=True)


async def get_ca(request: web.Request) -> web.Response:
    file = request.match_info["file"]
    repo = request.app[DEPS].repository
    if file.endswith(".p7c"):
        name = _split(file, ".p7c", "CA certificate")
        body = pkcs7.serialize_certificates(repo.chain(name), Encoding.DER)
        ctype = "application/pkcs7-mime"
    elif file.endswith(".pem"):
        name = _split(file, ".pem", "CA certificate")
        body = repo.issuer_certificate(name).public_bytes(Encoding.PEM)
        ctype = "application/x-pem-file"
    else:
        name = _split(file, ".cer", "CA certificate")
        body = repo.issuer_certificate(name).public_bytes(Encoding.DER)
        ctype = "application/pkix-cert"
    return web.Response(body=body, content_type=ctype, headers={"Cache-Control": "public, max-age=86400"})


async def get_cert(request: web.Request) -> web.Response:
    issuer_name = _name(request.match_info["issuer"], "issuer")
    serial_text = _split(request.match_info["file"], ".cer", "certificate")
    if not SERIAL_RE.match(serial_text):
        raise MalformedInput(f"{serial_text!r} is not a serial number (1 to 40 hex digits)")
    der = await request.app[DEPS].repository.certificate_der(issuer_name, int(serial_text, 16))
    return web.Response(body=der, content_type="application/pkix-cert",
                        headers={"Cache-Control": "public, max-age=3600"})


# Disclosure documents (CPS 8, CP 四.9): every version at a URL of its own, never replaced.

def _document_json(rec: DocumentRecord, base: str) -> dict:
    return {
        "kind": rec.kind,
        "version": rec.version,
        "lang": rec.lang,
        "effective": rec.effective.isoformat(),
        "oid": rec.oid,
        "media_type": rec.media_type,
        "size": rec.size,
        "sha256": rec.sha256,
        "published_at": rec.published_at.isoformat(),
        "url": f"{base}/{rec.path}",
    }


async def documents_json(request: web.Request) -> web.Response:
    """The disclosure record: every publication and revision, in the order published."""
    deps = request.app[DEPS]
    records = await deps.repository.documents()
    return web.json_response({"documents": [_document_json(r, deps.settings.base_url) for r in records]},
                             dumps=_dumps, headers={"Cache-Control": "no-cache"})


def _wants_json(request: web.Request) -> bool:
    accept = request.headers.get(hdrs.ACCEPT, "")
    return "application/json" in accept and "text/html" not in accept


async def documents_index(request: web.Request) -> web.Response:
    if _wants_json(request):
        return await documents_json(request)
    deps = request.app[DEPS]
    lang = _page_language(request)
    records = await deps.repository.documents()
    return _page(pages.render_documents(lang=lang, records=records, base_url=deps.settings.base_url), lang)


async def get_document(request: web.Request) -> web.Response:
    path = parse_document_path(request.match_info["kind"], request.match_info["version"], request.match_info["file"])
    rec, data = await request.app[DEPS].repository.document(path)
    # A published version never changes: caches may keep it for good.
    headers = {"ETag": f'"{rec.sha256}"', "Cache-Control": "public, max-age=31536000, immutable",
               "Last-Modified": http_date(rec.published_at)}
    if _not_modified(request, rec.sha256, rec.published_at):
        return web.Response(status=304, headers=headers)
    # The type was checked at publication; browsers must not guess another from the bytes.
    return web.Response(body=data, headers={**headers, "Content-Type": rec.media_type,
                                            "X-Content-Type-Options": "nosniff"})


async def healthz(request: web.Request) -> web.Response:
    return web.Response(text="ok\n")


async def healthz_publication(request: web.Request) -> web.Response:
    """`ready` while every CRL scope publishes; 503 naming each scope that does not, and why
    (a failing issuance, or a CA the store holds that this server's configuration lacks)."""
    problems = request.app[DEPS].health.problems()
    if problems:
        return web.Response(status=503, text="\n".join(problems) + "\n")
    return web.Response(text="ready\n")


async def healthz_loop(request: web.Request) -> web.Response:
    """How late the event loop has woken (the lag probe's figures, JSON): worst and 99th
    percentile since start and over the last 10 and 60 seconds. Read-only: nothing resets."""
    probe = request.app[DEPS].loop_probe
    if probe is None:
        raise NotFound("the event-loop probe is off ([loop_probe] enabled = false)")
    return web.Response(text=_dumps(probe.snapshot()) + "\n", content_type="application/json")


def _dumps(obj) -> str:
    return json.dumps(obj, indent=1)


async def readyz(request: web.Request) -> web.Response:
    """Readiness as JSON, one entry per component with its state and figures: 200 when every
    component is ready, 503 naming the failing ones; during maintenance 200 with
    `"maintenance": true` (reads are served)."""
    deps = request.app[DEPS]
    report = await deps.readiness.report(deps.clock.now())
    return web.json_response(report.as_json(), status=report.http_status, dumps=_dumps,
                             headers={"Cache-Control": "no-store"})


async def status_json(request: web.Request) -> web.Response:
    """The machine-readable status: state, maintenance windows announced and under way, the
    weekly budget, and availability per week."""
    deps = request.app[DEPS]
    return web.json_response(await deps.status(deps.clock.now()), dumps=_dumps, headers={"Cache-Control": "no-cache"})


# The web pages: server-rendered, no script, in zh-Hant or English.

def _page_language(request: web.Request) -> str:
    return i18n.choose(request.query.get("lang"), request.headers.get(hdrs.ACCEPT_LANGUAGE))


def _page(html_text: str, lang: str) -> web.Response:
    """A page with the headers every page carries: its language, that the language follows
    Accept-Language, and a Content-Security-Policy that allows no script at all."""
    return web.Response(text=html_text, content_type="text/html", charset="utf-8", headers={
        "Content-Language": lang,
        "Vary": "Accept-Language",
        "Content-Security-Policy": pages.CONTENT_SECURITY_POLICY,
        "X-Content-Type-Options": "nosniff",
        "Referrer-Policy": "no-referrer",
        "Cache-Control": "no-cache",
    })


def _crl_views(deps: HttpDeps, now: dt.datetime) -> list[pages.CrlView]:
    out = []
    for name, p in sorted(deps.publication.crls.items()):
        if not p.served(now):
            continue
        r = p.record
        ldap_url = deps.crl_ldap_url(r) if deps.crl_ldap_url is not None else None
        out.append(pages.CrlView(name, r.scope.kind.value, p.issuer_name, r, f"{deps.settings.base_url}/crl/{name}.crl",
                                 ldap_url, r.next_update > now))
    return out


async def home(request: web.Request) -> web.Response:
    """The repository's home page: status, notices, CA certificates, CRLs, OCSP, documents."""
    deps = request.app[DEPS]
    lang = _page_language(request)
    now = deps.clock.now()
    repo = deps.repository
    cas = [pages.ca_view(name, repo.issuer_certificate(name)) for name in repo.ca_names]
    crls = _crl_views(deps, now)
    notices = await repo.notices(limit=MAX_LISTED)
    windows = await repo.store.maintenance_windows(since=now - maintenance.WEEK)
    status = pages.service_status(crls, pages.announced_maintenance(notices, lang, now, windows))
    documents = pages.current_documents(await repo.documents())
    return _page(pages.render_home(lang=lang, cas=cas, crls=crls, ocsp_url=deps.ocsp_url, documents=documents,
                                   notices=notices, status=status, now=now), lang)


async def relying_parties(request: web.Request) -> web.Response:
    deps = request.app[DEPS]
    lang = _page_language(request)
    full = next((v.http_url for v in _crl_views(deps, deps.clock.now()) if v.kind == "full"), None)
    return _page(pages.render_relying_parties(lang=lang, base_url=deps.settings.base_url, ocsp_url=deps.ocsp_url,
                                              full_crl=full), lang)


async def notices_feed(request: web.Request) -> web.Response:
    """The notices as Atom, in the language asked for (`?lang=`, else Accept-Language)."""
    deps = request.app[DEPS]
    lang = _page_language(request)
    notices = await deps.repository.notices(limit=MAX_LISTED)
    body = atom.feed(notices, lang=lang, base_url=deps.settings.base_url, now=deps.clock.now())
    return web.Response(body=body, headers={
        "Content-Type": "application/atom+xml; charset=utf-8", "Content-Language": lang,
        "Vary": "Accept-Language", "X-Content-Type-Options": "nosniff", "Cache-Control": "no-cache"})


async def stylesheet_file(request: web.Request) -> web.Response:
    return web.Response(body=request.app[DEPS].stylesheet, headers={
        "Content-Type": "text/css; charset=utf-8", "X-Content-Type-Options": "nosniff",
        "Cache-Control": "public, max-age=3600"})


async def current_cps(request: web.Request) -> web.Response:
    """`/cps`, the CPS URL the certificates' policy qualifier names: a redirect to the current
    version in the language asked for (`?lang=`, else Accept-Language), else in zh-Hant, the
    authoritative text; 404 while no CPS is published."""
    lang = _page_language(request)
    current = {d.lang: d for d in pages.current_documents(await request.app[DEPS].repository.documents())
               if d.kind == "cps"}
    doc = current.get(lang) or current.get("zh-Hant") or next(iter(current.values()), None)
    if doc is None:
        raise NotFound("no CPS is published yet (see /documents/)")
    return web.Response(status=302, headers={"Location": f"/{doc.path}", "Vary": "Accept-Language",
                                             "Cache-Control": "no-cache"})
