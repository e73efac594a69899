"""`pkirepo demo init`: a demo PKI, its config file and a populated store."""
from __future__ import annotations

import asyncio
import dataclasses
import multiprocessing
import os
from collections import deque
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import AsyncIterator, Callable, Sequence

from . import demo_documents
from .clock import Clock
from .config import parse_listen
from .crl import Reason, encode_entry
from .demo_pki import (BUNDLE_MAX, CA_NAME, ROOT_NAME, DemoPki, make_audit_key, make_demo_pki, make_subscribers,
                       make_trustlist_signer, pem)
from .errors import ConfigError
from .root import audit_trail, load_settings, trust_list_service
from .service import Repository, load_signers
from .sqlite_store import SQLiteStore
from .store import Action, NewCert, Status

#: Certificates per task handed to a worker process, and per write transaction. One
#: transaction per batch rather than one for everything: SQLite keeps a transaction's
#: changed pages in memory, so a million rows at once would cost gigabytes.
CHUNK = 2000
TRANSACTION = 50_000

CONFIG_TEMPLATE = """\
# pkirepo demo configuration, written by `pkirepo demo init`.
# Every key is explained in config/pkirepo.example.toml.

[store]
path = "pkirepo.sqlite"

[http]
listen = "{listen}"
base_url = "{base_url}"

[publication]
dir = "pub"

[crl]
daily = ["01:15", "06:15", "11:00"]      # UTC, as in CPS Appendix C
next_update_hours = 24
supplementary_delay_seconds = {delay}
reason_unspecified = "omit"               # RFC 5280; "write" puts code 0 as the CPS does
expired_revoked = "keep"

[ldap]
listen = "{ldap_listen}"

[[ca]]
name = "{root}"
certificate = "pki/{root}.pem"
key = "pki/{root}.key"
arl = "RootCA2ARL"
arl_url = "{base_url}/crl/RootCA2ARL.crl"
ocsp_responder = "pki/ocsp-{root}.pem"
ocsp_responder_key = "pki/ocsp-{root}.key"

[[ca]]
name = "{ca}"
certificate = "pki/{ca}.pem"
key = "pki/{ca}.key"
full_crl = "eCertCA2-17CRL1"
partitions = true                         # eCertCA2-17CRL2 .. CRL4, from the certificates' CDPs
ocsp_responder = "pki/ocsp-{ca}.pem"
ocsp_responder_key = "pki/ocsp-{ca}.key"

# The trust list of certificate types qualifying for mutual recognition, signed by the
# scheme operator's own key (a demo one, self-signed).
[trustlist]
key = "pki/trustlist-signer.key"
certificate = "pki/trustlist-signer.pem"
next_update_days = 30
operator = {{ "zh-Hant" = "數字政策辦公室（示範）", en = "Digital Policy Office (demo)" }}

# The audit trail: its head signed every hour and after each CRL with this key, and the
# newest checkpoint written where the operator ships it off the host.
[audit]
retention = 7                             # years (the CP's minimum)
checkpoint_interval = 60                  # minutes
checkpoint_key = "pki/audit-checkpoint.key"
checkpoint_file = "audit-checkpoint.json"
"""

# The demo's trust list: both certificate types of the issuing CA, granted.
DEMO_TRUST_ENTRIES = (
    ("personal", "香港郵政電子證書（個人）（示範）", "Hongkong Post e-Cert (Personal) (demo)"),
    ("organisation", "香港郵政電子證書（機構）（示範）", "Hongkong Post e-Cert (Organisational) (demo)"),
)


def write_config(directory: Path, *, http: str, ldap: str, delay: int = 60) -> Path:
    host, port = parse_listen(http)
    shown = f"[{host}]" if ":" in host else host
    text = CONFIG_TEMPLATE.format(
        listen=http, base_url=f"http://{shown}:{port}", ldap_listen=ldap, root=ROOT_NAME, ca=CA_NAME, delay=delay)
    path = directory / "pkirepo.toml"
    path.write_text(text)
    return path


async def init_demo(
    directory: Path,
    *,
    http: str,
    ldap: str,
    subscribers: int,
    clock: Clock,
    progress: Callable[[int, int], object] | None = None,
    issuing_key: str = "rsa",
    revoke_every: int = 20,
    bare: bool = False,
) -> tuple[Path, DemoPki, Repository]:
    """Make the demo in `directory`: PKI, config, store and CRLs, then (unless `bare`) the
    documents and notices that fill the web pages."""
    directory = Path(directory)
    if (directory / "pkirepo.toml").exists():
        raise ConfigError(f"{directory / 'pkirepo.toml'} exists already: choose an empty directory")
    directory.mkdir(parents=True, exist_ok=True)
    host, port = parse_listen(http)
    shown = f"[{host}]" if ":" in host else host
    pki = make_demo_pki(directory, base_url=f"http://{shown}:{port}", subscribers=subscribers,
                        now=clock.now(), bundle=False, issuing_key=issuing_key,
                        revoke_every=revoke_every)
    # Short names for people trying the demo: pki/root.pem and pki/ca.pem (the issuing CA).
    for short, cert in (("root.pem", pki.root), ("ca.pem", pki.ca)):
        (cert.parent / short).write_bytes(cert.read_bytes())
    make_trustlist_signer(directory, now=clock.now())
    make_audit_key(directory)
    config = write_config(directory, http=http, ldap=ldap)
    settings = load_settings(config)
    store = SQLiteStore(settings.store_path)
    async with store:
        repo = Repository(settings, store=store, signers=load_signers(settings), clock=clock,
                          audit=audit_trail(settings, store=store, clock=clock))
        await repo.sync_issuers()
        await repo.add_certificates([(pki.revoked_ca.read_bytes(), str(pki.revoked_ca))])
        bundle = pki.ca.parent / "subscribers.pem" if subscribers <= BUNDLE_MAX else None
        await add_subscribers(repo, pki, progress=progress, bundle=bundle)
        for change in pki.changes:
            if change.issuer != CA_NAME:  # subscribers' changes went in with them
                reason = None if change.reason is None else Reason.parse(change.reason)
                await repo.change_status(change.issuer, change.serial, Action(change.action), reason=reason,
                                         at=change.time, invalidity=change.invalidity)
        await repo.issue_due(force=True)
        trust = trust_list_service(settings, store=store, repository=repo, clock=clock, signing=True)
        for cert_type, zh, en in DEMO_TRUST_ENTRIES:
            await trust.add(ca_name=CA_NAME, cert_type=cert_type, policy_oids=None,
                            cps_url=f"{settings.http.base_url}/cps", names={"zh-Hant": zh, "en": en})
        if bundle is not None:
            pki = dataclasses.replace(pki, subscribers=bundle)
        if not bare:
            await publish_samples(repo, clock)
        # The demo's trail starts vouched for up to its last record.
        await repo.audit.checkpoint()
    return config, pki, repo


async def publish_samples(repo: Repository, clock: Clock) -> None:
    """The demo's documents (CPS 1.0 and 1.1, the CP) and notices, through the same service
    calls as `pkirepo doc publish` and `pkirepo notice add`."""
    for d in demo_documents.documents():
        await repo.publish_document(kind=d.kind, version=d.version, lang=d.lang, effective=d.effective, oid=d.oid,
                                    data=d.data, source=d.name)
    for n in demo_documents.notices(clock.now()):
        await repo.add_notice(kind=n.kind, titles=n.titles, bodies=n.bodies, starts=n.starts, ends=n.ends)


async def add_subscribers(repo: Repository, pki: DemoPki, *, progress: Callable[[int, int], object] | None = None,
                          bundle: Path | None = None, workers: int | None = None) -> int:
    """Make the demo's subscriber certificates and put them in the store as they come,
    each already with its planned status: chunks made by worker processes on every core
    (a few chunks ahead, never all in memory), inserted in large transactions. `bundle`, if
    given, receives them all as PEM."""
    plan = pki.plan
    ca = repo.settings.ca(CA_NAME)
    issuer_id = repo.issuer(CA_NAME).id
    await repo.check_new_scopes(ca, pki.partition_urls)
    policy = repo.settings.crl.reason_policy
    planned = {c.serial: c for c in pki.changes if c.issuer == CA_NAME}

    def with_status(c: NewCert) -> NewCert:
        change = planned.get(c.serial)
        if change is None:
            return c
        if change.action == "hold":
            status, reason = Status.HOLD, Reason.certificateHold
        else:
            status, reason = Status.REVOKED, None if change.reason is None else Reason.parse(change.reason)
        return c._replace(status=status, reason=reason, revoked_at=change.time, invalidity_at=change.invalidity,
                          entry=encode_entry(c.serial, change.time, reason, change.invalidity, policy))

    chunks = _subscriber_chunks(plan, issuer_id, workers)
    out = open(bundle, "wb") if bundle is not None else None
    done = 0
    try:
        first = await anext(chunks, None)
        while first is not None:

            async def transaction() -> AsyncIterator[Sequence[NewCert]]:
                nonlocal first, done
                size = 0
                while first is not None and size < TRANSACTION:
                    chunk = [with_status(c) for c in first]
                    if out is not None:
                        out.write(b"".join(pem(c.der) for c in chunk))
                    yield chunk
                    size += len(chunk)
                    done += len(chunk)
                    if progress is not None:
                        progress(done, plan.count)
                    first = await anext(chunks, None)

            await repo.store.add_certificates_stream(transaction(), at=repo.clock.now())
    finally:
        await chunks.aclose()
        if out is not None:
            out.close()
    await repo.ensure_scopes(ca)
    return done


async def _subscriber_chunks(plan, issuer_id: int, workers: int | None) -> AsyncIterator[list[NewCert]]:
    """The subscriber certificates in order, CHUNK at a time; above a few chunks, made by
    a pool of worker processes a few chunks ahead of the consumer."""
    ranges = [(first, min(plan.count, first + CHUNK)) for first in range(0, plan.count, CHUNK)]
    if len(ranges) <= 2:  # small: not worth starting processes
        for first, last in ranges:
            yield make_subscribers(plan, issuer_id, first, last)
        return
    workers = workers or max(1, os.cpu_count() or 1)
    loop = asyncio.get_running_loop()
    # spawn, not fork: this process has threads (aiosqlite's).
    with ProcessPoolExecutor(max_workers=workers, mp_context=multiprocessing.get_context("spawn")) as pool:
        pending: deque[asyncio.Future] = deque()
        try:
            for first, last in ranges:
                pending.append(loop.run_in_executor(pool, make_subscribers, plan, issuer_id, first, last))
                if len(pending) > workers + 1:
                    yield await pending.popleft()
            while pending:
                yield await pending.popleft()
        finally:
            for f in pending:
                f.cancel()


def demo_summary(config: Path, pki: DemoPki, settings) -> str:
    base = settings.http.base_url
    lines = [
        f"demo ready: {config}",
        f"  serve:   pkirepo serve --config {config}",
        f"  index:   {base}/crl/",
        f"  samples: {pki.good} (good), {pki.revoked} (revoked), {pki.held} (on hold)",
        f"  CAs:     {pki.root.parent / 'root.pem'} (root), {pki.ca.parent / 'ca.pem'} (issuing CA)",
        f"  trust list: {base}/trustlist/  (XML: {base}/trustlist/current.xml)",
        f"  pages:   {base}/  {base}/relying-parties  {base}/documents/  {base}/notices.atom",
    ]
    return "\n".join(lines)


