"""The admin API: how a CA's systems push certificates, revocations, holds and releases,
documents, notices, trust-list changes and maintenance windows over the network.

A front-end like the public HTTP one: `setup(app, settings, *, dependencies)` registers a
context on the main application that runs a second aiohttp application on a listener of
its own (`[admin] listen`, HTTPS, never the public port). Every change goes through the
same service layer as the CLI, with the caller as the `Actor`. Authentication is mutual
TLS first, bearer tokens second (admin_auth.py); what each route takes and answers is in
admin_schema.py, which also gives the OpenAPI document. Every refusal is an RFC 9457
problem (application/problem+json); refusals decided here, before the service layer (401,
403, 413, 415, 400, 422, 409), are put on record through the `AuditSink`.

A change sent with an `Idempotency-Key` (required for revoke, hold and release) is claimed
in the store before it is carried out and its answer kept there: a retry, from any worker
or node, changes nothing again and gets the first answer; the same key with another body is
422; a retry while the first is still being carried out is 409."""
from __future__ import annotations

import datetime as dt
import hashlib
import json
import logging
import os
import socket
import ssl
from typing import Any, Awaitable, Callable, Protocol

from aiohttp import web

from .actor import Actor, AuditSink
from .admin_auth import Forbidden, Principal, Unauthenticated, bearer_token, from_certificate, from_token, require
from .admin_schema import KEY_RE, PREFIX, Invalid, Route, openapi, parse_name, parse_serial, parse_time, routes
from .admin_settings import AdminSettings, check_key_file
from .client_cert_tls import accept_any_client_certificate
from .clock import Clock
from .documents import LANGUAGES as DOC_LANGUAGES
from .errors import ConfigError, RepoError
from .notices import NOTICE_LANGUAGES, NoticeKind
from .service import Repository
from .store import Action

log = logging.getLogger("pkirepo.admin")

# OpenSSL's X509_V_FLAG_NO_CHECK_TIME: the TLS layer checks the client certificate's chain
# but not its dates, so that an expired certificate reaches the handler and is answered 401
# with a reason (admin_auth checks the dates against the clock), not a bare TLS alert.
_NO_CHECK_TIME = 0x200000

_TITLES = {400: "Bad Request", 401: "Unauthorized", 403: "Forbidden", 404: "Not Found", 405: "Method Not Allowed",
           409: "Conflict", 413: "Content Too Large", 415: "Unsupported Media Type", 422: "Unprocessable Content",
           500: "Internal Server Error", 501: "Not Implemented", 503: "Service Unavailable"}
_SLUGS = {400: "invalid-request", 401: "unauthenticated", 403: "forbidden", 404: "not-found",
          405: "method-not-allowed", 409: "conflict", 413: "too-large", 415: "unsupported-media-type",
          422: "idempotency-key-reused", 500: "internal-error", 501: "not-implemented", 503: "unavailable"}


class AuditReader(Protocol):
    """Reads the audit trail (the audit part of the store provides it)."""

    async def audit_since(self, since: dt.datetime, *, limit: int) -> list[dict]: ...


class Refusal(Exception):
    """A refusal of this front-end's, with its HTTP status and the field at fault."""

    def __init__(self, status: int, detail: str, *, field: str | None = None,
                 headers: dict[str, str] | None = None) -> None:
        super().__init__(detail)
        self.status, self.detail, self.field, self.headers = status, detail, field, headers or {}


def problem(status: int, detail: str, *, field: str | None = None) -> bytes:
    body: dict[str, Any] = {"type": f"urn:pkirepo:problem:{_SLUGS.get(status, 'error')}",
                            "title": _TITLES.get(status, "Error"), "status": status, "detail": detail}
    if field is not None:
        body["field"] = field
    return json.dumps(body, ensure_ascii=False).encode()


def _answer(status: int, body: bytes, headers: dict[str, str] | None = None) -> web.Response:
    ctype = "application/problem+json" if status >= 400 else "application/json"
    return web.Response(status=status, body=body, content_type=ctype, headers=headers)


#: A change request still "in progress" this long after its claim was made by a process
#: that died before answering (a change takes well under a second, a batch a few): a retry
#: with the same key and body takes the claim over instead of getting 409 until the key
#: expires. If the first attempt did change the store, the retry meets that state (a
#: revocation of a certificate already revoked is refused as such), never a second change.
ABANDONED_AFTER = dt.timedelta(minutes=2)


def _z(when: dt.datetime | None) -> str | None:
    return None if when is None else when.astimezone(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def server_context(settings: AdminSettings) -> ssl.SSLContext:
    """The listener's TLS: its certificate and key; client certificates requested (not
    required: a caller without one gets a 401 problem, or comes with a token) and let
    through whoever issued them: `admin_auth.from_certificate` checks the issuer against
    `client_cas`, so that every refusal is a 401 problem."""
    check_key_file(settings.key, f"{settings.source}: admin.key")
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    try:
        ctx.load_cert_chain(settings.certificate, settings.key)
    except (OSError, ssl.SSLError) as e:
        raise ConfigError(f"{settings.source}: admin.certificate / admin.key: cannot load "
                          f"{settings.certificate} with {settings.key}: {e}") from None
    if settings.client_ca_certs:
        from cryptography.hazmat.primitives.serialization import Encoding

        ctx.verify_mode = ssl.CERT_OPTIONAL
        ctx.load_verify_locations(cadata="".join(c.public_bytes(Encoding.PEM).decode() for c in settings.client_ca_certs))
        ctx.verify_flags |= _NO_CHECK_TIME
        # A certificate from a CA not in client_cas then gets a 401 that says so, not a TLS alert.
        accept_any_client_certificate(ctx)
    return ctx


Handler = Callable[[Principal, dict, dict], Awaitable[tuple[int, Any]]]


class AdminApi:
    """The routes, over the service layer."""

    def __init__(self, settings: AdminSettings, *, repository: Repository, trustlist, audit: AuditSink,
                 audit_reader: AuditReader | None, clock: Clock, server_url: str) -> None:
        self.settings = settings
        self.repo = repository
        self.trustlist = trustlist
        self.audit = audit
        self.audit_reader = audit_reader
        self.clock = clock
        self.routes = routes(max_batch=settings.max_batch, document_kinds=repository.settings.document_kinds,
                             notice_kinds=tuple(k.value for k in NoticeKind), doc_languages=DOC_LANGUAGES,
                             notice_languages=NOTICE_LANGUAGES)
        self.document = json.dumps(openapi(self.routes, server_url=server_url), indent=1).encode()

    def application(self) -> web.Application:
        # The body cap is applied by the handler (413 as a problem); aiohttp's own cap is
        # set just above it so that aiohttp never answers first with its plain-text 413.
        app = web.Application(middlewares=[self._problems], client_max_size=self.settings.max_body + 1)
        app.router.add_get(f"{PREFIX}/openapi.json", self._openapi)
        for r in self.routes:
            app.router.add_route(r.method, PREFIX + r.path, self._wrap(r, getattr(self, f"_op_{r.op}")))
        return app

    @web.middleware
    async def _problems(self, request: web.Request, handler) -> web.StreamResponse:
        """aiohttp's own refusals (no such route, wrong method) as problems too; and never a
        traceback to the caller."""
        try:
            return await handler(request)
        except web.HTTPException as e:
            if e.status < 400:
                raise
            return _answer(e.status, problem(e.status, e.reason or _TITLES.get(e.status, "refused")),
                           {"Allow": e.headers["Allow"]} if "Allow" in e.headers else None)
        except Exception:
            log.exception("admin API: %s %s failed", request.method, request.path)
            return _answer(500, problem(500, "internal error; the repository's log has the details"))

    async def _openapi(self, request: web.Request) -> web.Response:
        return web.Response(body=self.document, content_type="application/json")

    # The pipeline every route goes through

    def principal(self, request: web.Request) -> Principal:
        source = request.remote
        ssl_object = request.transport.get_extra_info("ssl_object") if request.transport else None
        der = ssl_object.getpeercert(binary_form=True) if ssl_object is not None else None
        if der:
            return from_certificate(der, client_cas=self.settings.client_ca_certs, grants=self.settings.clients,
                                    now=self.clock.now(), source=source)
        token = bearer_token(request.headers.get("Authorization"))
        if token is None:
            raise Unauthenticated("no client certificate and no bearer token")
        return from_token(token, self.settings.tokens, source=source)

    async def _body(self, request: web.Request, route: Route) -> Any:
        if request.content_length is not None and request.content_length > self.settings.max_body:
            raise Refusal(413, f"the body ({request.content_length} bytes) is over admin.max_body "
                               f"({self.settings.max_body} bytes)")
        try:
            raw = await request.read()
        except web.HTTPRequestEntityTooLarge:
            raise Refusal(413, f"the body is over admin.max_body ({self.settings.max_body} bytes)") from None
        if len(raw) > self.settings.max_body:
            raise Refusal(413, f"the body is over admin.max_body ({self.settings.max_body} bytes)")
        if not raw.strip():
            if route.body is None or not any(f.required for f in route.body.fields):
                return {}
            raise Refusal(400, "the body is empty: a JSON object is expected", field="body")
        if request.content_type != "application/json":
            raise Refusal(415, f"the body must be application/json, not {request.content_type[:80]!r}")
        try:
            data = json.loads(raw.decode("utf-8"))
        except (UnicodeDecodeError, ValueError) as e:
            raise Refusal(400, f"the body is not JSON: {str(e)[:120]}", field="body") from None
        if route.body is None and data != {}:
            raise Refusal(400, "this request takes no body (or {})", field="body")
        return data

    def _wrap(self, route: Route, handler: Handler):
        async def handle(request: web.Request) -> web.Response:
            principal: Principal | None = None
            obj = request.path
            try:
                try:
                    principal = self.principal(request)
                except Unauthenticated as e:
                    await self._refused(e.who or _nobody(request), route, obj, 401, e.detail)
                    return _answer(401, problem(401, e.detail),
                                   {"WWW-Authenticate": 'Bearer realm="pkirepo admin"'})
                try:
                    require(principal, route.roles, f"{route.method} {PREFIX}{route.path}")
                except Forbidden as e:
                    await self._refused(principal.actor, route, obj, 403, e.detail)
                    return _answer(403, problem(403, e.detail))
                if route.method == "GET":
                    params = self._path_params(route, request)
                    status, payload = await handler(principal, dict(request.query), params)
                    return _answer(status, json.dumps(payload, ensure_ascii=False).encode())
                data = await self._body(request, route)
                parsed = route.body.parse(data) if route.body is not None else {}
                params = self._path_params(route, request)
                obj = _object(route, parsed, params, request.path)
                key = request.headers.get("Idempotency-Key")
                if key is None and route.idempotency == "required":
                    raise Refusal(400, "an Idempotency-Key header is required for this change (a retry with the "
                                       "same key is answered as the first request, never carried out twice)",
                                  field="Idempotency-Key")
                if key is not None and not KEY_RE.fullmatch(key):
                    raise Refusal(400, "Idempotency-Key: 1 to 255 visible ASCII characters", field="Idempotency-Key")
            except Invalid as e:
                await self._refused(principal.actor, route, obj, 400, e.detail)
                return _answer(400, problem(400, e.detail, field=e.field))
            except Refusal as e:
                await self._refused(principal.actor if principal else _nobody(request), route, obj, e.status, e.detail)
                return _answer(e.status, problem(e.status, e.detail, field=e.field), e.headers)
            except RepoError as e:  # a GET's lookup
                return _answer(_status(e), problem(_status(e), _detail(e)))
            if key is None:
                status, body = await self._carry_out(route, handler, principal, parsed, params)
                return _answer(status, body)
            return await self._idempotent(route, handler, principal, parsed, params, key, data, request, obj)

        handle.__name__ = route.op
        return handle

    async def _carry_out(self, route: Route, handler: Handler, principal: Principal, parsed: dict,
                         params: dict) -> tuple[int, bytes]:
        """The change itself: (status, body). A refusal of the service layer is its problem;
        the service layer puts it on record."""
        try:
            if route.changes:
                await self.repo.refuse_in_maintenance()
            status, payload = await handler(principal, parsed, params)
        except RepoError as e:
            return _status(e), problem(_status(e), _detail(e))
        return status, json.dumps(payload, ensure_ascii=False).encode()

    async def _idempotent(self, route, handler, principal: Principal, parsed, params, key: str, data,
                          request: web.Request, obj: str) -> web.Response:
        canonical = json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
        request_hash = hashlib.sha256(f"{request.method} {request.path}\n{canonical}".encode()).hexdigest()
        now = self.clock.now()
        try:
            found = await self.repo.store.claim_idempotency_key(key, principal.key, request_hash, at=now,
                                                                 expired_before=now - self.settings.idempotency,
                                                                 abandoned_before=now - ABANDONED_AFTER)
        except RepoError as e:
            return _answer(_status(e), problem(_status(e), _detail(e)))
        if found is not None:
            if found.request_hash != request_hash:
                detail = (f"Idempotency-Key {key[:60]!r} was used at {_z(found.created_at)} for another request: "
                          f"use a new key for a new request")
                await self._refused(principal.actor, route, obj, 422, detail)
                return _answer(422, problem(422, detail, field="Idempotency-Key"))
            if found.status is None:
                detail = (f"the request with Idempotency-Key {key[:60]!r} is still being carried out: retry later "
                          f"(a claim left by a repository process that stopped is taken over by a retry "
                          f"{int(ABANDONED_AFTER.total_seconds())} s after it was made)")
                await self._refused(principal.actor, route, obj, 409, detail)
                return _answer(409, problem(409, detail, field="Idempotency-Key"), {"Retry-After": "1"})
            return _answer(found.status, found.body or b"", {"Idempotent-Replayed": "true"})
        try:
            status, body = await self._carry_out(route, handler, principal, parsed, params)
        except BaseException:
            await _quietly(self.repo.store.release_idempotency_key(key, principal.key))
            raise
        if status >= 500:
            # Not an answer to keep: the store was busy, or a window is under way. A retry
            # with the same key carries the request out afresh.
            await _quietly(self.repo.store.release_idempotency_key(key, principal.key))
        else:
            try:
                await self.repo.store.complete_idempotency_key(key, principal.key, status, body)
            except RepoError:
                log.exception("admin API: the answer to Idempotency-Key %r could not be kept", key)
        return _answer(status, body)

    def _path_params(self, route: Route, request: web.Request) -> dict:
        out = {}
        for name in route.path_params:
            value = request.match_info[name]
            try:
                if name == "serial":
                    out[name] = parse_serial(value)
                elif name == "issuer":
                    out[name] = parse_name(value)
                else:
                    if not (value.isascii() and value.isdigit() and len(value) <= 12):
                        raise ValueError("must be a number")
                    out[name] = int(value)
            except ValueError as e:
                raise Invalid(name, str(e)) from None
        return out

    async def _refused(self, actor: Actor, route: Route, obj: str, status: int, detail: str) -> None:
        try:
            await self.audit.record(actor, route.op, obj, f"refused: {status} {detail}",
                                    {"status": status, "route": f"{route.method} {PREFIX}{route.path}"})
        except Exception:
            log.exception("admin API: a refusal could not be put on record")

    # The routes

    async def _op_add_certificates(self, p: Principal, body: dict, params: dict):
        items = body["certificates"]
        n = await self.repo.add_certificates(items, actor=p.actor)
        return 201, {"added": n}

    async def _status_change(self, p: Principal, body: dict, action: Action, **kw):
        rec = await self.repo.change_status(body["issuer"], body["serial"], action, actor=p.actor, **kw)
        return 200, {**_cert_json(body["issuer"], rec),
                     "crl_by": _z(self.repo.status_published_by()), "ocsp": rec.status.name.lower()}

    async def _op_revoke(self, p, body, params):
        return await self._status_change(p, body, Action.REVOKE, reason=body["reason"], at=body["revocation_time"],
                                         invalidity=body["invalidity_date"])

    async def _op_hold(self, p, body, params):
        return await self._status_change(p, body, Action.HOLD, at=body["hold_time"])

    async def _op_release(self, p, body, params):
        return await self._status_change(p, body, Action.RELEASE)

    async def _op_certificate(self, p, query, params):
        info = await self.repo.certificate_info(params["issuer"], params["serial"])
        history = await self.repo.certificate_history(params["issuer"], params["serial"])
        out = _cert_json(info.issuer, info.cert)
        out["crls"] = [{"name": li.record.scope.name, "kind": li.record.scope.kind.value,
                        "crl_number": li.record.number, "this_update": _z(li.record.this_update),
                        "next_update": _z(li.record.next_update), "listed": li.listed} for li in info.listings]
        out["history"] = [{"event": e.id, "at": _z(e.at), "action": e.kind} for e in history]
        return 200, out

    async def _op_issue_crls(self, p, body, params):
        issued = await self.repo.issue_due(force=True, issuer_name=body.get("issuer"), actor=p.actor)
        return 200, {"issued": [{"name": i.record.scope.name, "crl_number": i.record.number,
                                 "entries": i.record.entries, "this_update": _z(i.record.this_update),
                                 "next_update": _z(i.record.next_update)} for i in issued]}

    async def _op_publish_document(self, p, body, params):
        rec = await self.repo.publish_document(kind=body["kind"], version=body["version"], lang=body["lang"],
                                               effective=body["effective"], oid=body["oid"], data=body["content"],
                                               source="content", actor=p.actor)
        return 201, {"kind": rec.kind, "version": rec.version, "lang": rec.lang,
                     "effective": rec.effective.isoformat(), "oid": rec.oid, "media_type": rec.media_type,
                     "size": rec.size, "sha256": rec.sha256, "published_at": _z(rec.published_at),
                     "url": f"{self.repo.settings.http.base_url}/{rec.path}"}

    async def _op_add_notice(self, p, body, params):
        n = await self.repo.add_notice(kind=body["kind"], titles=body["title"], bodies=body["body"],
                                       starts=body["starts"], ends=body["ends"], actor=p.actor)
        return 201, _notice_json(n)

    async def _op_withdraw_notice(self, p, body, params):
        return 200, _notice_json(await self.repo.withdraw_notice(params["id"], actor=p.actor))

    async def _op_trustlist_add(self, p, body, params):
        service = _require_trustlist(self.trustlist)
        rec = await service.add(ca_name=body["ca"], cert_type=body["type"], policy_oids=body["policy_oids"],
                                cps_url=body["cps_url"], names=dict(body["names"]), at=body["date"], actor=p.actor)
        return 201, _trustlist_json(rec, self.repo.settings.http.base_url)

    async def _op_trustlist_change(self, p, body, params):
        from .trustlist import Status

        service = _require_trustlist(self.trustlist)
        rec = await service.change(ca_name=body["ca"], cert_type=body["type"], status=Status(body["status"]),
                                   at=body["date"], actor=p.actor)
        return 201, _trustlist_json(rec, self.repo.settings.http.base_url)

    async def _op_maintenance_list(self, p, query, params):
        from .operations import window_json

        now = self.clock.now()
        return 200, {"windows": [window_json(w, now) for w in await self.repo.maintenance_windows()],
                     "budget_minutes_per_7_days": self.repo.maintenance_budget.total_seconds() / 60}

    async def _window(self, w, status: int = 200):
        from .operations import window_json

        return status, window_json(w, self.clock.now())

    async def _op_maintenance_schedule(self, p, body, params):
        start = body["start"]
        w = await self.repo.schedule_maintenance(start, start + dt.timedelta(minutes=body["duration_minutes"]),
                                                 body["reason"], actor=p.actor)
        return await self._window(w, 201)

    async def _op_maintenance_cancel(self, p, body, params):
        return await self._window(await self.repo.cancel_maintenance(params["id"], actor=p.actor))

    async def _op_maintenance_start(self, p, body, params):
        return await self._window(await self.repo.start_maintenance(body["reason"], actor=p.actor), 201)

    async def _op_maintenance_end(self, p, body, params):
        return await self._window(await self.repo.end_maintenance(body["reason"], actor=p.actor))

    async def _op_audit(self, p, query, params):
        from .errors import NotFound

        if self.audit_reader is None:
            raise NotFound("the audit trail is not readable through this server (no audit reader configured)")
        raw = query.get("since")
        if raw is None:
            raise Invalid("since", "is required")
        try:
            since = parse_time(raw)
        except ValueError as e:
            raise Invalid("since", str(e)) from None
        return 200, {"records": await self.audit_reader.audit_since(since, limit=10_000)}


def _require_trustlist(service):
    from .errors import NotFound

    if service is None:
        raise NotFound("this repository publishes no trust list (no [trustlist] section)")
    return service


def _status(e: RepoError) -> int:
    return e.http_status if 400 <= e.http_status < 600 else 500


def _detail(e: RepoError) -> str:
    # An unexpected error tells nothing of the inside (as every edge does).
    return e.message if e.http_status < 500 or e.http_status == 503 else "internal error"


def _nobody(request: web.Request) -> Actor:
    """Who a refused request came from when it named nobody we know."""
    has_token = "Authorization" in request.headers
    return Actor("token" if has_token else "certificate", "(unknown token)" if has_token else "(none)",
                 request.remote)


def _object(route: Route, parsed: dict, params: dict, path: str) -> str:
    """What a change is about, as precisely as the request says: issuer/serial for a
    certificate, the document or notice, else the path."""
    if "issuer" in parsed and "serial" in parsed and parsed["issuer"] and parsed["serial"] is not None:
        return f"{parsed['issuer']}/{parsed['serial']:X}"
    if route.op == "publish_document":
        return f"document {parsed['kind']} {parsed['version']} {parsed['lang']}"
    if route.op.startswith("trustlist"):
        return f"trust list {parsed['ca']} {parsed['type']}"
    if "id" in params:
        return f"{route.op.split('_')[0]} {params['id']}"
    return path


def _cert_json(issuer: str, c) -> dict:
    return {"issuer": issuer, "serial": c.serial_hex, "subject": c.subject, "status": c.status.name.lower(),
            "reason": None if c.reason is None else c.reason.name, "revoked_at": _z(c.revoked_at),
            "invalidity_date": _z(c.invalidity_at), "not_before": _z(c.not_before), "not_after": _z(c.not_after)}


def _notice_json(n) -> dict:
    return {"id": n.id, "kind": n.kind, "title": dict(n.title), "body": dict(n.body), "starts": _z(n.starts),
            "ends": _z(n.ends), "published_at": _z(n.published_at), "withdrawn_at": _z(n.withdrawn_at)}


def _trustlist_json(rec, base: str) -> dict:
    return {"seq": rec.seq, "issued_at": _z(rec.issued_at), "next_update": _z(rec.next_update),
            "sha256": rec.sha256, "url": f"{base}/trustlist/{rec.seq}.xml"}


async def _quietly(aw) -> None:
    try:
        await aw
    except Exception:
        log.exception("admin API: an Idempotency-Key could not be released")


ADMIN_RUNNER = web.AppKey("admin_runner", web.AppRunner)


def setup(app: web.Application, settings: AdminSettings, *, repository: Repository, trustlist, audit: AuditSink,
          clock: Clock, audit_reader: AuditReader | None = None, listen_fd: int | None = None,
          http_port: int | None = None) -> list[str]:
    """Serve the admin API on its own listener while `app` runs (nothing when disabled).
    `listen_fd`: the listening socket a worker of `serve --workers` inherited."""
    if not settings.enabled:
        return []
    host, port = settings.listen
    if listen_fd is None and http_port is not None and port == http_port and port != 0:
        raise ConfigError(f"{settings.source}: admin.listen: port {port} is the public HTTP port: "
                          f"the admin API needs a listener of its own")
    ctx = server_context(settings)  # a certificate or key that does not load refuses to start
    shown = f"[{host}]" if ":" in host else host
    api = AdminApi(settings, repository=repository, trustlist=trustlist, audit=audit, audit_reader=audit_reader,
                   clock=clock, server_url=f"https://{shown}:{port}")
    admin_app = api.application()

    async def admin_context(app: web.Application):
        runner = web.AppRunner(admin_app, access_log=None, shutdown_timeout=5.0)
        await runner.setup()
        try:
            if listen_fd is not None:
                site: web.BaseSite = web.SockSite(runner, socket.socket(fileno=listen_fd), ssl_context=ctx)
            else:
                site = web.TCPSite(runner, host, port, ssl_context=ctx, reuse_address=True)
            try:
                await site.start()
            except OSError as e:
                reason = os.strerror(e.errno) if e.errno else str(e)
                raise ConfigError(f"cannot listen for the admin API on {shown}:{port}: {reason}") from e
            app[ADMIN_RUNNER] = runner
            yield
        finally:
            await runner.cleanup()

    app.cleanup_ctx.append(admin_context)
    return [f"Admin API:    https://{shown}:{port}{PREFIX}/ (OpenAPI: https://{shown}:{port}{PREFIX}/openapi.json)"]
