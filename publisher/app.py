"""The aiohttp application: one factory, dependencies under typed keys, background work in
cleanup contexts (started after, and stopped before, the listeners)."""
from __future__ import annotations

import asyncio
import datetime as dt
import email.utils
import logging
import re
from typing import Mapping

from aiohttp import web
from cryptography.hazmat.primitives.serialization import Encoding, pkcs7

from ldap.service import setup as setup_ldap
from ocsp.http import setup as setup_ocsp

from .clock import Clock
from .config import NAME_RE, Settings
from .errors import MalformedInput, NotFound, RepoError
from .files import remove_stale_temporaries
from .publication import Publication
from .service import Repository
from .signer import Signer
from .store import Store, serial_hex

log = logging.getLogger("pkirepo.http")

REPO = web.AppKey("repository", Repository)
PUBLICATION = web.AppKey("publication", Publication)
SETTINGS = web.AppKey("settings", Settings)
CLOCK = web.AppKey("clock", Clock)
# Lines `pkirepo serve` prints at start; front-ends (OCSP, LDAP) append theirs.
EXTRA_URLS = web.AppKey("extra_urls", list)

SERIAL_RE = re.compile(r"^[0-9A-Fa-f]{1,40}$")
NUMBER_RE = re.compile(r"^[0-9]{1,49}$")


def http_date(when: dt.datetime) -> str:
    return email.utils.format_datetime(when.astimezone(dt.timezone.utc), usegmt=True)


@web.middleware
async def errors_middleware(request: web.Request, handler):
    """Domain errors become their HTTP status with a one-line reason; anything unexpected
    is logged and answered 500 without detail."""
    try:
        return await handler(request)
    except web.HTTPException:
        raise
    except RepoError as e:
        if e.http_status >= 500:
            log.exception("error answering %s %s", request.method, request.path)
            text = "internal error" if e.http_status == 500 else e.message
        else:
            text = e.message
        return web.Response(status=e.http_status, text=text + "\n")
    except asyncio.CancelledError:
        raise
    except Exception:
        log.exception("unexpected error answering %s %s", request.method, request.path)
        return web.Response(status=500, text="internal error\n")


def _name(value: str, what: str) -> str:
    """A path segment that must be a publication name; 400 otherwise."""
    if not NAME_RE.match(value):
        raise MalformedInput(f"{value!r} is not a valid {what} name")
    return value


def _split(value: str, suffix: str, what: str) -> str:
    if not value.endswith(suffix):
        raise NotFound(f"no such {what}: {value!r} (names end in {suffix})")
    return _name(value[: -len(suffix)], what)


def _not_modified(request: web.Request, etag: str, last_modified: dt.datetime) -> bool:
    inm = request.headers.get("If-None-Match")
    if inm is not None:
        tags = [t.strip() for t in inm.split(",")]
        return "*" in tags or etag in tags or f"W/{etag}" in tags
    ims = request.if_modified_since
    return ims is not None and last_modified <= ims


def _crl_response(request: web.Request, der: bytes, rec, *, immutable: bool = False) -> web.StreamResponse:
    now = request.app[CLOCK].now()
    etag = f'"{rec.sha256}"'
    settings = request.app[SETTINGS]
    if immutable:
        cache = "public, max-age=31536000, immutable"  # an archived CRL never changes
    else:
        # Never let a cache keep a CRL past its nextUpdate.
        left = int((rec.next_update - now).total_seconds())
        cache = f"public, max-age={max(0, min(left, settings.publication_max_age))}"
    headers = {
        "ETag": etag,
        "Last-Modified": http_date(rec.this_update),
        "Cache-Control": cache,
    }
    if not immutable:
        headers["Expires"] = http_date(min(rec.next_update, now + dt.timedelta(seconds=settings.publication_max_age)))
    if _not_modified(request, etag, rec.this_update):
        return web.Response(status=304, headers=headers)
    return web.Response(body=der, content_type="application/pkix-crl", headers=headers)


async def get_crl(request: web.Request) -> web.StreamResponse:
    name = _split(request.match_info["file"], ".crl", "CRL")
    pub = request.app[PUBLICATION].crls.get(name)
    if pub is None:
        raise NotFound(f"no CRL named {name!r}")
    return _crl_response(request, pub.der, pub.record)


async def crl_index(request: web.Request) -> web.Response:
    s = request.app[SETTINGS]
    return web.json_response(
        {"crls": request.app[PUBLICATION].index(s.base_url, request.app[CLOCK].now())},
        dumps=_dumps)


async def archive_index(request: web.Request) -> web.Response:
    name = _name(request.match_info["name"], "CRL")
    repo = request.app[REPO]
    base = request.app[SETTINGS].base_url
    records = await repo.store.crl_archive(name)
    return web.json_response({
        "name": name,
        "retention_days": request.app[SETTINGS].crl.archive_retention.days,
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
    repo = request.app[REPO]
    rec = await repo.store.crl_by_number(name, int(number_text))
    if rec is None:
        await repo.store.crl_archive(name)  # NotFound for an unknown name
        raise NotFound(f"no CRL number {number_text} of {name} in the archive")
    return _crl_response(request, await repo.store.crl_der(rec.id), rec, immutable=True)


async def get_ca(request: web.Request) -> web.Response:
    file = request.match_info["file"]
    repo = request.app[REPO]
    if file.endswith(".p7c"):
        name = _split(file, ".p7c", "CA certificate")
        body = pkcs7.serialize_certificates(repo.chain(name), Encoding.DER)
        ctype = "application/pkcs7-mime"
    else:
        name = _split(file, ".cer", "CA certificate")
        body = repo.issuer_certificate(name).public_bytes(Encoding.DER)
        ctype = "application/pkix-cert"
    return web.Response(body=body, content_type=ctype, headers={"Cache-Control": "public, max-age=86400"})


async def get_cert(request: web.Request) -> web.Response:
    repo = request.app[REPO]
    issuer_name = _name(request.match_info["issuer"], "issuer")
    serial_text = _split(request.match_info["file"], ".cer", "certificate")
    if not SERIAL_RE.match(serial_text):
        raise MalformedInput(f"{serial_text!r} is not a serial number (1 to 40 hex digits)")
    issuer = repo.issuer(issuer_name)
    rec = await repo.store.certificate(issuer.id, int(serial_text, 16))
    if rec is None:
        raise NotFound(f"no certificate {serial_hex(int(serial_text, 16))} from {issuer_name}")
    if rec.der is None:
        raise NotFound(f"certificate {rec.serial_hex} is known (imported) but its file was never provided")
    return web.Response(body=rec.der, content_type="application/pkix-cert",
                        headers={"Cache-Control": "public, max-age=3600"})


async def home(request: web.Request) -> web.Response:
    s = request.app[SETTINGS]
    pub = request.app[PUBLICATION]
    lines = ["pkirepo: certificate repository", "", "CRLs and ARLs:"]
    lines += [f"  {s.base_url}/crl/{n}.crl" for n in sorted(pub.crls)]
    lines += ["", f"Index (JSON): {s.base_url}/crl/", "", "CA certificates:"]
    lines += [f"  {s.base_url}/ca/{ca.name}.cer  (chain: {s.base_url}/ca/{ca.name}.p7c)" for ca in s.cas]
    return web.Response(text="\n".join(lines) + "\n")


async def healthz(request: web.Request) -> web.Response:
    return web.Response(text="ok\n")


def _dumps(obj) -> str:
    import json

    return json.dumps(obj, indent=1)


async def repository_context(app: web.Application):
    """Start-up: issuers from config, publication directory matched to the store, catch-up
    issuance; then the background loop until shutdown."""
    repo = app[REPO]
    await repo.sync_issuers()
    remove_stale_temporaries(repo.settings.publication_dir)
    rewritten = await repo.sync_files()
    if rewritten:
        log.warning("publication directory was behind the store: rewrote %d CRL file(s)", rewritten)
    await app[PUBLICATION].refresh(force=True)
    task = asyncio.create_task(publication_loop(app), name="pkirepo-publication")
    yield
    task.cancel()
    try:
        await task
    except asyncio.CancelledError:
        pass


async def publication_loop(app: web.Application, *, interval: float = 1.0) -> None:
    """Once a second: notice changes from any process, issue what is due (catch-up on the
    first pass), prune the archive daily. Errors are logged; the next tick retries."""
    repo, pub = app[REPO], app[PUBLICATION]
    last_prune: dt.date | None = None
    while True:
        try:
            await repo.issue_due()
            # Issuing logs an event, so the change token moves and this picks it up too.
            await pub.refresh()
            today = repo.clock.now().date()
            if last_prune != today:
                pruned = await repo.prune_archive()
                if pruned:
                    log.info("pruned %d archived CRL(s) past retention", pruned)
                last_prune = today
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("publication loop: will retry")
        await asyncio.sleep(interval)


def create_app(
    settings: Settings,
    *,
    store: Store,
    signers: Mapping[str, Signer],
    clock: Clock,
    ldap_listen: str | None = None,
) -> web.Application:
    """The one application factory. `store` must be open; the caller owns it."""
    app = web.Application(middlewares=[errors_middleware], client_max_size=64 * 1024)
    repo = Repository(settings, store=store, signers=signers, clock=clock)
    app[SETTINGS] = settings
    app[CLOCK] = clock
    app[REPO] = repo
    app[PUBLICATION] = Publication(repo)
    app[EXTRA_URLS] = []
    app.cleanup_ctx.append(repository_context)
    app.router.add_get("/", home)
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/crl/", crl_index)
    app.router.add_get("/crl/archive/{name}/", archive_index)
    app.router.add_get("/crl/archive/{name}/{file}", archive_crl)
    app.router.add_get("/crl/{file}", get_crl)
    app.router.add_get("/ca/{file}", get_ca)
    app.router.add_get("/certs/{issuer}/{file}", get_cert)
    # Protocol front-ends share this app, its store and its loop. OCSP: POST /ocsp,
    # GET /ocsp/<base64>, /healthz/ocsp. LDAP: a listener and snapshot refresh as a cleanup
    # context, only when a listen address is given (`pkirepo serve` passes one).
    setup_ocsp(app)
    setup_ldap(app, settings, listen=ldap_listen)
    return app
