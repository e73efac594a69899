"""OCSP over HTTP (RFC 6960 appendix A, RFC 5019 §5-6): `POST /ocsp`, `GET /ocsp/<base64>`.

The only module of the responder that knows aiohttp. It moves bytes: the HTTP checks that
belong to HTTP (method 405, content type 415, body size 413, a GET path that is not base64
400) happen here; everything about the request's content is an OCSP status chosen by
`OcspResponder.answer()`, sent with HTTP 200 as OCSP clients expect. Nothing escapes as a
500: `answer()` never raises, and the handlers catch what could go wrong around it.
"""
from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field

from aiohttp import web

from .config import OcspSettings, load_ocsp_settings
from .errors import BadBase64
from .request import decode_get_path
from .responder import Answer, OcspResponder
from .responders import load_responders
from .response import ResponseStatus, unsuccessful
from .source import StoreStatusSource, configured_ca_serials

log = logging.getLogger("pkirepo.ocsp")

CONTENT_TYPE_REQUEST = "application/ocsp-request"
CONTENT_TYPE_RESPONSE = "application/ocsp-response"


@dataclass
class OcspService:
    """What the handlers need; `responder` is set once the start-up context has run."""

    settings: OcspSettings
    responder: OcspResponder | None = None
    tasks: list[asyncio.Task] = field(default_factory=list)


OCSP = web.AppKey("ocsp", OcspService)


def setup(app: web.Application) -> None:
    """Register the OCSP routes and the responder's start-up / background context.

    Call after the repository's own cleanup context is registered (create_app does), so
    that the issuers are in the store when the responder starts.
    """
    from publisher.app import EXTRA_URLS, SETTINGS

    settings = app[SETTINGS]
    ocsp_settings = load_ocsp_settings(settings)
    if not ocsp_settings.enabled:
        return
    app[OCSP] = OcspService(ocsp_settings)
    app.router.add_post("/ocsp", post_ocsp)
    app.router.add_get("/ocsp/{request:.*}", get_ocsp)
    app.router.add_get("/healthz/ocsp", ready)
    app.cleanup_ctx.append(ocsp_context)
    if EXTRA_URLS in app:
        base = settings.base_url
        app[EXTRA_URLS].append(f"OCSP:         {base}/ocsp  (POST; GET {base}/ocsp/<base64>; ready: {base}/healthz/ocsp)")


async def ocsp_context(app: web.Application):
    """Start the responder after the repository has loaded its issuers; run the pre-signing
    loop in the background; stop it before the store closes."""
    from publisher.app import CLOCK, REPO

    service = app[OCSP]
    repo = app[REPO]
    configured = {ca.name for ca in repo.settings.cas}
    issuers = [i for i in await repo.store.issuers() if i.name in configured]
    responders = load_responders(service.settings, issuers, repo.signers)
    responder = None
    # Both come from the Store interface: a store without them still answers correctly,
    # with per-process pre-signing only and change detection by polling the change log.
    table = await repo.store.presigned_responses()
    watch = repo.store.change_probe()
    try:
        responder = OcspResponder(
            service.settings,
            store=repo.store,
            source=StoreStatusSource(repo.store, configured_cas=configured_ca_serials(issuers)),
            clock=app[CLOCK],
            responders=responders,
            table=table,
            watch=watch,
        )
        await responder.start()
        for problem in responder.readiness():
            log.error("OCSP not ready: %s", problem)
        service.responder = responder
        task = asyncio.create_task(responder.run(), name="pkirepo-ocsp-presign")
        service.tasks.append(task)
        yield
    finally:
        service.responder = None
        for task in service.tasks:
            task.cancel()
        for task in service.tasks:
            try:
                await task
            except asyncio.CancelledError:
                pass
        service.tasks.clear()
        if responder is not None:
            responder.close()
        if table is not None:
            await table.close()
        if watch is not None:
            watch.close()


def _ocsp(body: bytes, *, status: int = 200, headers: dict[str, str] | None = None) -> web.Response:
    return web.Response(body=body, status=status, headers=headers, content_type=CONTENT_TYPE_RESPONSE)


async def _answer(request: web.Request, data: bytes) -> Answer:
    responder = request.app[OCSP].responder
    if responder is None:
        return Answer(unsuccessful(ResponseStatus.TRY_LATER), ResponseStatus.TRY_LATER)
    return await responder.answer(data)


async def _read_body(request: web.Request, cap: int) -> bytes | None:
    """The body, or None if it is longer than cap (without reading more than cap + 1)."""
    if request.content_length is not None:
        if request.content_length > cap:
            return None
        return await request.read()
    buf = bytearray()
    async for chunk in request.content.iter_any():
        buf += chunk
        if len(buf) > cap:
            return None
    return bytes(buf)


async def post_ocsp(request: web.Request) -> web.StreamResponse:
    service = request.app[OCSP]
    if request.content_type.lower() != CONTENT_TYPE_REQUEST:
        log.info("OCSP POST from %s with Content-Type %r: 415", request.remote, request.content_type)
        return web.Response(status=415, text=f"POST /ocsp takes Content-Type: {CONTENT_TYPE_REQUEST}\n")
    cap = service.settings.max_body_bytes
    body = await _read_body(request, cap)
    if body is None:
        log.info("OCSP POST from %s larger than %d bytes: 413", request.remote, cap)
        return web.Response(status=413, text=f"OCSP requests are limited to {cap} bytes\n")
    return _ocsp((await _answer(request, body)).body)


async def get_ocsp(request: web.Request) -> web.StreamResponse:
    # The raw path: the router's decoded one has lost the difference between "/" and "%2F".
    path = request.raw_path.split("?", 1)[0]
    tail = path[path.find("/ocsp/") + len("/ocsp/"):]
    try:
        data = decode_get_path(tail)
    except BadBase64 as e:
        log.info("OCSP GET from %s: %s", request.remote, e.message)
        return _ocsp(unsuccessful(ResponseStatus.MALFORMED_REQUEST), status=400, headers={"Cache-Control": "no-store"})
    answer = await _answer(request, data)
    entry = answer.entry
    if entry is None:
        # Errors and nonce answers are for this request only.
        return _ocsp(answer.body, headers={"Cache-Control": "no-store"})
    # RFC 5019 §6: let caches keep a pre-signed answer until its nextUpdate, never longer.
    now = request.app[OCSP].responder.clock.now() if request.app[OCSP].responder else entry.this_update
    max_age = max(0, int((entry.next_update - now).total_seconds()))
    headers = {
        "Cache-Control": f"max-age={max_age}, public, no-transform, must-revalidate",
        "Last-Modified": entry.last_modified,
        "Expires": entry.expires,
        "ETag": entry.etag,
    }
    inm = request.headers.get("If-None-Match")
    if inm is not None and entry.etag in [t.strip() for t in inm.split(",")]:
        return web.Response(status=304, headers=headers)
    return _ocsp(entry.der, headers=headers)


async def ready(request: web.Request) -> web.Response:
    """200 when every CA's responder can sign; 503 naming what is wrong otherwise."""
    responder = request.app[OCSP].responder
    problems = ["OCSP responder not started"] if responder is None else responder.readiness()
    if problems:
        return web.Response(status=503, text="".join(f"{p}\n" for p in problems))
    return web.Response(text="ready\n")
