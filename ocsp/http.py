"""OCSP over HTTP (RFC 6960 appendix A, RFC 5019 §5-6): `POST /ocsp`, `GET /ocsp/<base64>`.

The only module of the responder that knows aiohttp. It moves bytes: the HTTP checks that
belong to HTTP (method 405, content type 415, body size 413 (before the body is sent, when
the client asks with Expect), a body that does not decode or a GET path that is not base64
400) happen here; everything about the request's content is an OCSP status chosen by
`OcspResponder.answer()`, sent with HTTP 200 as OCSP clients expect. Nothing escapes as a
500: `answer()` never raises, and the handlers catch what could go wrong around it.
"""
from __future__ import annotations

import asyncio
import hashlib
import logging
import time
from dataclasses import dataclass, field
from typing import Callable, Mapping, Sequence

from aiohttp import web

from publisher.actor import Actor, AuditSink
from publisher.audit_trail import try_record
from publisher.clock import Clock
from publisher.httpedge import MAX_BODY_BYTES, body_unreadable, expect_handler
from publisher.ratelimit import RateLimit, suffix
from publisher.readiness import Component, Readiness
from publisher.signer import Signer
from publisher.store import PresignedPort, Store
from publisher.tasks import cancel_and_wait

from .config import OcspSettings
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
    clock: Clock
    responder: OcspResponder | None = None
    # Requests refused at the HTTP level are the clients' mistakes: logged at a bounded rate.
    refusals: RateLimit = field(default_factory=lambda: RateLimit(rate=2.0, burst=10, clock=time.monotonic))
    # Told of every answer: (responseStatus name, "presigned" | "fresh" | "error").
    observe: Callable[[str, str], None] | None = None

    def client_mistake(self, msg: str, *args: object) -> None:
        dropped = self.refusals.allow()
        if dropped is not None:
            log.info(msg + "%s", *args, suffix(dropped))


OCSP = web.AppKey("ocsp", OcspService)
OCSP_ACTOR = Actor("system", "ocsp")


def setup(
    app: web.Application,
    settings: OcspSettings,
    *,
    store: Store,
    presigned: PresignedPort | None,
    signers: Mapping[str, Signer],
    ca_names: Sequence[str],
    clock: Clock,
    base_url: str,
    leading: Callable[[], bool] | None = None,
    readiness: Readiness | None = None,
    observe: Callable[[str, str], None] | None = None,
    audit: AuditSink | None = None,
) -> list[str]:
    """Register the OCSP routes and the responder's start-up / background context; returns
    the line `pkirepo serve` prints for it.

    `presigned` shares pre-signed answers and commits between processes; without it each
    process pre-signs for itself and notices changes by polling the store's change log.
    Register after the repository's own context, so that the issuers are in the store when
    the responder starts. With `leading` (several workers on one store), this process
    pre-signs only while `leading()` is true; the others answer from what it saved.
    """
    if not settings.enabled:
        return []
    service = OcspService(settings, clock, observe=observe)
    app[OCSP] = service
    if readiness is not None:
        readiness.register("ocsp", _readiness_check(service, readiness))
    # A body over the cap is refused before the client sends it, when it asks first.
    app.router.add_post("/ocsp", post_ocsp, expect_handler=expect_handler(settings.max_body_bytes))
    no_body = expect_handler(MAX_BODY_BYTES)
    app.router.add_get("/ocsp/{request:.*}", get_ocsp, expect_handler=no_body)
    app.router.add_get("/healthz/ocsp", ready, expect_handler=no_body)

    async def ocsp_context(app: web.Application):
        """Start the responder; run the pre-signing loop in the background; stop it before
        the store closes."""
        configured = set(ca_names)
        issuers = [i for i in await store.issuers() if i.name in configured]
        # Loading a key checks it (an RSA key's consistency check takes tens of milliseconds):
        # in a thread, not on the loop that already serves HTTP.
        responders = await asyncio.to_thread(load_responders, settings, issuers, signers)
        if audit is not None:
            await _record_keys(audit, responders.values())
        table = await presigned.open_table() if presigned is not None else None
        watch = presigned.change_probe() if presigned is not None else None
        responder = None
        task = None
        try:
            responder = OcspResponder(
                settings,
                store=store,
                source=StoreStatusSource(store, configured_cas=configured_ca_serials(issuers)),
                clock=clock,
                responders=responders,
                table=table,
                watch=watch,
            )
            await responder.start()
            for problem in responder.readiness():
                log.error("OCSP not ready: %s", problem)
            service.responder = responder
            task = asyncio.create_task(_presign_when_leading(responder, leading), name="pkirepo-ocsp-presign")
            yield
        finally:
            service.responder = None
            if task is not None:
                await cancel_and_wait(task)
            if responder is not None:
                # Waits for the signing workers to exit: not on the loop, which still closes
                # the other front-ends meanwhile.
                await asyncio.to_thread(responder.close)
            if table is not None:
                await table.close()
            if watch is not None:
                watch.close()

    app.cleanup_ctx.append(ocsp_context)
    return [f"OCSP:         {base_url}/ocsp  (POST; GET {base_url}/ocsp/<base64>; ready: {base_url}/healthz/ocsp)"]


async def _record_keys(audit: AuditSink, responders) -> None:
    """Every responder key loaded is on record (CPS 4.5): which key now signs for which CA,
    or why none does."""
    for r in responders:
        cert = r.identity.certificate_der if r.identity is not None else None
        detail = {"mode": "ca" if cert == r.ca_certificate_der else "delegated"} if cert else {}
        if cert is not None:
            detail.update(certificate_sha256=hashlib.sha256(cert).hexdigest(), key_sha1=r.identity.key_hash.hex(),
                          not_after=None if r.not_after is None else r.not_after.isoformat())
        await try_record(audit, OCSP_ACTOR, "ocsp-key-load", f"ocsp responder {r.name}",
                         "ok" if r.problem is None and cert is not None else f"failed: {r.problem}", detail)


async def _presign_when_leading(responder: OcspResponder, leading: Callable[[], bool] | None) -> None:
    # Tried about once a second, like the publication loop: the lock's holder may die at any
    # time, and a holder may lose it (a node cut off from a shared database): pre-signing
    # then stops here until this process leads again.
    if leading is None:
        await responder.run()
        return
    coverage = responder.presigner.coverage
    while True:
        while not leading():
            coverage.elsewhere = True
            await asyncio.sleep(1.0)
        coverage.elsewhere = False
        task = asyncio.create_task(responder.run(), name="pkirepo-ocsp-presign-loop")
        try:
            while leading() and not task.done():
                await asyncio.wait({task}, timeout=1.0)
        finally:
            await cancel_and_wait(task)
        if task.done() and not task.cancelled():
            task.result()  # the loop ended by itself: its error, as before


def _ocsp(body: bytes, *, status: int = 200, headers: dict[str, str] | None = None) -> web.Response:
    return web.Response(body=body, status=status, headers=headers, content_type=CONTENT_TYPE_RESPONSE)


async def _answer(request: web.Request, data: bytes) -> Answer:
    service = request.app[OCSP]
    responder = service.responder
    if responder is None:
        answer = Answer(unsuccessful(ResponseStatus.TRY_LATER), ResponseStatus.TRY_LATER)
    else:
        answer = await responder.answer(data)
    if service.observe is not None:
        source = ("presigned" if answer.entry is not None else
                  "fresh" if answer.status is ResponseStatus.SUCCESSFUL else "error")
        service.observe(answer.status.name.lower(), source)
    return answer


def _readiness_check(service: OcspService, readiness: Readiness):
    """One component per CA: its responder can sign, and its certificate stays valid for
    more than the configured number of days; with the pre-signing figures."""
    min_validity = readiness.settings.responder_min_validity

    async def check(now) -> list[Component]:
        responder = service.responder
        if responder is None:
            return [Component("ocsp", False, "starting", "OCSP responder not started")]
        stats = dict(responder.stats)
        out = []
        for r in sorted(responder.responders.values(), key=lambda r: r.name):
            figures: dict = {}
            problem = r.problem_at(now)
            if r.not_after is not None:
                left = r.not_after - now
                figures["responder_not_after"] = r.not_after.isoformat()
                figures["responder_days_left"] = round(left.total_seconds() / 86400, 1)
                if problem is None and left <= min_validity:
                    problem = (f"responder certificate of {r.name} expires at {r.not_after.isoformat()}, "
                               f"within {min_validity.days} days")
            out.append(Component(f"ocsp:{r.name}", problem is None, "ok" if problem is None else "failing",
                                 problem, figures))
        save = responder.cache.save_problem
        out.append(Component("ocsp:presigned", True, "ok" if save is None else "saving fails", None,
                             {**stats, **({"save_problem": save} if save else {})}))
        return out

    return check


async def _read_body(request: web.Request, cap: int) -> bytes | None:
    """The body, or None if it is longer than cap.  A declared length over the cap is
    refused unread; otherwise the application's client_max_size bounds what is read."""
    if request.content_length is not None and request.content_length > cap:
        return None
    body = await request.read()
    return None if len(body) > cap else body


async def post_ocsp(request: web.Request) -> web.StreamResponse:
    service = request.app[OCSP]
    if request.content_type.lower() != CONTENT_TYPE_REQUEST:
        service.client_mistake("OCSP POST from %s with Content-Type %r: 415", request.remote,
                               request.content_type)
        return web.Response(status=415, text=f"POST /ocsp takes Content-Type: {CONTENT_TYPE_REQUEST}\n")
    cap = service.settings.max_body_bytes
    try:
        body = await _read_body(request, cap)
    except web.RequestPayloadError as e:
        # Bytes that do not decode as the Content-Encoding or chunked framing they claim
        # hold no OCSP request: malformedRequest, with 400 as for a GET that is not base64.
        log.info("OCSP POST from %s: body unreadable: %s", request.remote, body_unreadable(e))
        return _ocsp(unsuccessful(ResponseStatus.MALFORMED_REQUEST), status=400, headers={"Cache-Control": "no-store"})
    if body is None:
        service.client_mistake("OCSP POST from %s larger than %d bytes: 413", request.remote, cap)
        return web.Response(status=413, text=f"OCSP requests are limited to {cap} bytes\n")
    return _ocsp((await _answer(request, body)).body)


async def get_ocsp(request: web.Request) -> web.StreamResponse:
    # The raw path: the router's decoded one has lost the difference between "/" and "%2F".
    path = request.raw_path.split("?", 1)[0]
    tail = path[path.find("/ocsp/") + len("/ocsp/"):]
    try:
        data = decode_get_path(tail)
    except BadBase64 as e:
        request.app[OCSP].client_mistake("OCSP GET from %s: %s", request.remote, e.message)
        return _ocsp(unsuccessful(ResponseStatus.MALFORMED_REQUEST), status=400, headers={"Cache-Control": "no-store"})
    answer = await _answer(request, data)
    entry = answer.entry
    if entry is None:
        # Errors and nonce answers are for this request only.
        return _ocsp(answer.body, headers={"Cache-Control": "no-store"})
    # RFC 5019 §6: let caches keep a pre-signed answer until its nextUpdate, never longer.
    now = request.app[OCSP].clock.now()
    max_age = max(0, int((entry.next_update - now).total_seconds()))
    headers = {
        "Cache-Control": f"max-age={max_age}, public, no-transform, must-revalidate",
        "Last-Modified": entry.last_modified,
        "Expires": entry.expires,
        "ETag": entry.etag,
    }
    # aiohttp parses If-None-Match (lists, weak tags); its values come without quotes.
    if any(t.value == entry.etag.strip('"') for t in request.if_none_match or ()):
        return web.Response(status=304, headers=headers)
    return _ocsp(entry.der, headers=headers)


async def ready(request: web.Request) -> web.Response:
    """200 when every CA's responder can sign, with a line on pre-signing coverage; 503
    naming what is wrong otherwise."""
    responder = request.app[OCSP].responder
    problems = ["OCSP responder not started"] if responder is None else responder.readiness()
    if problems:
        return web.Response(status=503, text="".join(f"{p}\n" for p in problems))
    # Answers not yet pre-signed are signed on request: coverage is information, not a reason
    # to refuse traffic.
    return web.Response(text=f"ready\n{responder.coverage()}\n")
