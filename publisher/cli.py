"""The `pkirepo` command line. Errors name the file, key or value at fault and exit
non-zero (2 for bad input or a refused change)."""
from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import json
import logging
import os
import signal
import sys
from importlib import metadata
from pathlib import Path

from . import audit, witness
from .actor import os_user
from .audit_trail import audited, record_failure
from .clock import SystemClock
from .config import parse_listen
from .crl import EARLIEST_TIME, Reason
from .errors import Conflict, MalformedInput, RepoError, StoreBehind
from .files import read_input
from .logs import configure as configure_logs
from .maintenance import minutes
from .root import Backend, Settings, audit_trail, check_config, load_settings, open_backend, trust_list_service
from .root import repository_exists, store_location
from .service import CertificateInfo, Repository, load_signers
from .store import Action, CertRecord, Status

log = logging.getLogger("pkirepo")


_HEX_DIGITS = frozenset("0123456789abcdefABCDEF")
MAX_SERIAL_OCTETS = 20  # RFC 5280 §4.1.2.2


def parse_time(text: str) -> dt.datetime:
    """ISO 8601 (`2026-11-25T01:15:00Z`, a date alone, or an offset); a time without zone
    is UTC. Also openssl's YYYYMMDDHHMMSSZ. Refuses times X.509 cannot express."""
    from .openssl_index import parse_time as ossl

    t = text.strip()
    try:
        # isascii: str.isdigit() also takes other scripts' digits, which no time format uses.
        if t.endswith("Z") and t[:-1].isascii() and t[:-1].isdigit():
            value = ossl(t)
        elif not t.isascii():
            raise ValueError(t)
        else:
            value = dt.datetime.fromisoformat(t.replace("Z", "+00:00") if t.endswith("Z") else t)
            if value.tzinfo is None:
                value = value.replace(tzinfo=dt.timezone.utc)
            # Moving a time near year 1 or 9999 to UTC can leave the calendar.
            value = value.astimezone(dt.timezone.utc)
    except (ValueError, OverflowError):
        raise argparse.ArgumentTypeError(f"{text!r} is not a time (use ISO 8601, e.g. 2026-11-25T01:15:00Z)")
    if value < EARLIEST_TIME:
        raise argparse.ArgumentTypeError(f"{text!r} is before 1950, which a CRL cannot express")
    return value


def parse_serial(text: str) -> int:
    """Hexadecimal, optionally with a 0x prefix or openssl's colons (`0A:1B`); a positive
    number of at most 20 octets. Signs, underscores and non-ASCII digits, which int() would
    take, are refused: a serial typed wrong must not name another certificate."""
    t = text.strip().replace(":", "")
    if t[:2].lower() == "0x":
        t = t[2:]
    if t.startswith(("-", "+")):
        raise argparse.ArgumentTypeError(f"{text!r} is not a serial number: serial numbers are positive hexadecimal")
    if not t or not set(t) <= _HEX_DIGITS:
        raise argparse.ArgumentTypeError(f"{text!r} is not a hexadecimal serial number")
    value = int(t, 16)
    if value.bit_length() > 8 * MAX_SERIAL_OCTETS:
        raise argparse.ArgumentTypeError(f"{text!r} is longer than {MAX_SERIAL_OCTETS} octets")
    return value


def parse_reason(text: str) -> Reason:
    try:
        return Reason.parse(text)
    except ValueError as e:
        raise argparse.ArgumentTypeError(str(e))


def config_path(args) -> Path:
    if args.config:
        return Path(args.config)
    env = os.environ.get("PKIREPO_CONFIG")
    return Path(env) if env else Path("pkirepo.toml")


class Context:
    """Settings, an open store and a repository for one command."""

    def __init__(self, args, *, signing: bool = False, create: bool = False, writing: bool = False) -> None:
        self.settings: Settings = load_settings(config_path(args))
        self.signing = signing
        self.create = create
        # A command that changes what is published: refused during a maintenance window.
        self.writing = writing
        # The command, as the audit trail names a refusal made before the service layer.
        self.command = getattr(args, "command", "cli")
        self.backend: Backend | None = None

    async def __aenter__(self) -> Repository:
        signers = load_signers(self.settings) if self.signing else {}
        self.backend = await open_backend(self.settings, create=self.create)
        try:
            clock = SystemClock()
            # Commands that change something sign the audit trail's head after a CRL.
            trail = audit_trail(self.settings, store=self.backend.store, clock=clock,
                                signing=self.signing or self.writing)
            self.repo = Repository(self.settings, store=self.backend.store, signers=signers, clock=clock, audit=trail)
            if self.writing:
                try:
                    await self.repo.refuse_in_maintenance()
                except RepoError as e:
                    # Refused before any change was tried: on record all the same.
                    await record_failure(trail, os_user(), self.command, "repository", audit.refusal(e), None)
                    raise
            await self.repo.sync_issuers()
        except BaseException:
            # __aexit__ does not run when entering fails; the store's threads must still end.
            await self.backend.close()
            raise
        return self.repo

    async def __aexit__(self, *exc) -> None:
        if self.backend is not None:
            await self.backend.close()


def progress_printer(label: str):
    """Progress on stderr for long operations: a live line on a terminal, otherwise a line
    every 10%."""
    state = {"last": -1}
    tty = sys.stderr.isatty()
    step = 2 if tty else 10

    def show(done: int, total: int) -> None:
        pct = done * 100 // max(total, 1)
        if pct != state["last"] and (pct % step == 0 or done == total):
            state["last"] = pct
            end = "\n" if done == total or not tty else "\r"
            print(f"{label}: {done}/{total} ({pct}%)", end=end, file=sys.stderr, flush=True)

    return show


# Commands


async def cmd_serve(args) -> int:
    from .server import serve, supervise
    from .supervisor import WORKER_ENV, parse_worker_env

    settings = load_settings(config_path(args))
    http = parse_listen(args.http) if args.http else settings.http.listen
    if args.admin:
        import dataclasses

        try:
            settings = dataclasses.replace(settings, admin=settings.admin.listening_on(args.admin))
        except ValueError as e:
            raise MalformedInput(f"--admin: {e}") from None
    worker = os.environ.pop(WORKER_ENV, None)
    if worker is not None:  # started by the supervisor of `serve --workers`
        try:
            fds = parse_worker_env(worker)
        except ValueError as e:
            raise MalformedInput(str(e)) from None
        return await serve(settings, http=http, ldap=args.ldap, inherited=fds)
    if args.workers < 0:
        raise MalformedInput(f"--workers {args.workers}: give 0 (one process) or more workers")
    if args.workers:
        return await supervise(settings, config=config_path(args), http=http, ldap=args.ldap,
                               workers=args.workers, verbose=args.verbose)
    return await serve(settings, http=http, ldap=args.ldap)


async def cmd_demo_init(args) -> int:
    from .demo import demo_summary, init_demo

    try:
        parse_listen(args.http)
        parse_listen(args.ldap)
        if args.admin:
            parse_listen(args.admin)
    except ValueError as e:
        raise MalformedInput(f"--http/--ldap/--admin: {e}") from None
    from .demo_pki import MIN_SUBSCRIBERS
    if args.subscribers < MIN_SUBSCRIBERS:
        raise MalformedInput(f"--subscribers {args.subscribers}: at least {MIN_SUBSCRIBERS}")
    if args.revoke_every < 4:
        raise MalformedInput(f"--revoke-every {args.revoke_every}: at least 4")
    # SIGTERM stops it as Ctrl-C does: the open transaction rolls back and the worker
    # processes are shut down rather than left behind.
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    config, pki, repo = await init_demo(
        Path(args.directory), http=args.http, ldap=args.ldap, subscribers=args.subscribers, clock=SystemClock(),
        progress=progress_printer("subscriber certificates"), issuing_key=args.issuing_key,
        revoke_every=args.revoke_every, bare=args.bare, admin=args.admin)
    print(demo_summary(config, pki, repo.settings))
    return 0


async def cmd_cert_add(args) -> int:
    items = [(read_input(f), f) for f in args.files]
    async with Context(args, writing=True) as repo:
        n = await repo.add_certificates(items, actor=os_user())
    print(f"added {n} certificate(s)")
    return 0


def _status_command(action: Action):
    async def run(args) -> int:
        async with Context(args, writing=not args.dry_run) as repo:
            rec = await repo.change_status(
                args.issuer, args.serial, action,
                reason=getattr(args, "reason", None),
                at=getattr(args, "time", None),
                invalidity=getattr(args, "invalidity_date", None),
                dry_run=args.dry_run, actor=os_user())
            by = repo.status_published_by()
            delay = int(repo.settings.crl.supplementary_delay.total_seconds())
        state = rec.status.name.lower() + (f" ({rec.reason.name})" if rec.reason is not None else "")
        if args.dry_run:
            print(f"{args.issuer} {rec.serial_hex}: would become {state}; nothing was changed (--dry-run)")
            return 0
        print(f"{args.issuer} {rec.serial_hex}: {state}")
        # OCSP reads the store on every request: the change is in its very next answer.
        print(f"OCSP answers {rec.status.name.lower()} now. CRLs: a running server issues a supplementary CRL "
              f"within {delay} s (by {_utc(by)}); without a server, run `pkirepo publish`.")
        return 0

    return run


def _utc(when: dt.datetime | None) -> str | None:
    """ISO 8601 in UTC with a Z, as the JSON output and the messages print times."""
    if when is None:
        return None
    return when.astimezone(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def _cert_json(issuer: str, c: CertRecord) -> dict:
    """The stable JSON form of a certificate record (keys never renamed; new ones may be added)."""
    return {
        "issuer": issuer,
        "serial": c.serial_hex,
        "subject": c.subject,
        "status": c.status.name.lower(),
        "reason": None if c.reason is None else c.reason.name,
        "revoked_at": _utc(c.revoked_at),
        "invalidity_date": _utc(c.invalidity_at),
        "not_before": _utc(c.not_before),
        "not_after": _utc(c.not_after),
        "is_ca": c.is_ca,
        "distribution_point": c.dp_url,
        "has_file": c.der is not None,
    }


def _info_json(info: CertificateInfo) -> dict:
    out = _cert_json(info.issuer, info.cert)
    out["crls"] = [{"name": li.record.scope.name, "kind": li.record.scope.kind.value,
                    "crl_number": li.record.number, "this_update": _utc(li.record.this_update),
                    "next_update": _utc(li.record.next_update), "listed": li.listed}
                   for li in info.listings]
    out["ocsp"] = info.cert.status.name.lower()
    return out


async def cmd_cert_show(args) -> int:
    from ldap.build import subscriber_dn

    ctx = Context(args)
    async with ctx as repo:
        info = await repo.certificate_info(args.issuer, args.serial)
        ldap = ctx.settings.ldap
        dn = subscriber_dn(ldap.layout, await repo.store.issuers(), info.cert) if ldap.enabled else None
    if args.json:
        print(json.dumps({**_info_json(info), "ldap_dn": dn}, indent=2))
        return 0
    c = info.cert
    rows = [("issuer", info.issuer), ("serial", c.serial_hex), ("subject", c.subject or "(not known: imported without its file)"),
            ("status", c.status.name.lower()), ("reason", c.reason.name if c.reason is not None else None),
            ("revoked at", _utc(c.revoked_at)), ("invalidity date", _utc(c.invalidity_at)),
            ("not before", _utc(c.not_before)), ("not after", _utc(c.not_after)),
            ("CA certificate", "yes" if c.is_ca else None), ("distribution point", c.dp_url)]
    for label, value in rows:
        if value is not None:
            print(f"{label + ':':20}{value}")
    for li in info.listings:
        r = li.record
        if c.status is Status.GOOD:
            what = "not listed (good)"
        elif li.listed:
            what = "listed"
        else:
            what = "not yet listed: the next CRL of this scope will list it"
        print(f"{'CRL ' + r.scope.kind.value + ':':20}{r.scope.name} #{r.number} (next update {_utc(r.next_update)}): {what}")
    if not info.listings:
        print(f"{'CRLs:':20}no current CRL covers it yet")
    print(f"{'LDAP:':20}{dn or 'not in the directory'}")
    # OCSP answers from the store as it is at each request: its state is the status above.
    print(f"{'OCSP:':20}{c.status.name.lower()}" + (" (certificateHold)" if c.status is Status.HOLD else ""))
    return 0


LIST_PAGE = 1000


async def cmd_cert_list(args) -> int:
    status = {"good": Status.GOOD, "revoked": Status.REVOKED, "hold": Status.HOLD}.get(args.status)
    out = sys.stdout
    count = 0
    async with Context(args) as repo:
        issuer_id = repo.issuer(args.issuer).id if args.issuer else None
        names = {repo.issuer(n).id: n for n in repo.ca_names}
        after = None
        if args.json:
            out.write("[")
        # Page by page: memory stays flat however many certificates the store holds, and
        # output starts at once.
        while True:
            page = await repo.store.list_certificates(issuer_id=issuer_id, status=status,
                                                      expiring_before=args.expiring_before, after=after,
                                                      limit=LIST_PAGE)
            for c in page:
                name = names.get(c.issuer_id, str(c.issuer_id))
                if args.json:
                    out.write(("," if count else "") + "\n" + json.dumps(_cert_json(name, c)))
                else:
                    state = c.status.name.lower() + (f" ({c.reason.name})" if c.reason is not None else "")
                    out.write(f"{name}\t{c.serial_hex}\t{state}\t{_utc(c.not_after) or '-'}\t{c.subject or '-'}\n")
                count += 1
            if len(page) < LIST_PAGE:
                break
            after = (page[-1].issuer_id, page[-1].serial)
    if args.json:
        out.write("\n]\n")
    else:
        print(f"{count} certificate(s)", file=sys.stderr)
    return 0


async def cmd_config_check(args) -> int:
    path = Path(args.file) if args.file else config_path(args)
    report = await asyncio.to_thread(check_config, path, SystemClock().now())
    for p in report.problems:
        print(f"pkirepo: error: {p}", file=sys.stderr)
    if report.problems:
        print(f"{path}: {len(report.problems)} problem(s)", file=sys.stderr)
        return 2
    for line in report.summary:
        print(line)
    print(f"{path}: ok")
    return 0


async def cmd_ca_retire(args) -> int:
    async with Context(args, writing=True) as repo:
        issuer = await repo.retire(args.name, keep_published=args.keep_published, actor=os_user())
        current = [r for r in await repo.store.current_crls() if r.scope.issuer_id == issuer.id]
    print(f"CA {args.name} retired at {_utc(issuer.retired_at)}: its CRLs are no longer issued; its archive stays.")
    for r in current:
        until = "for good" if args.keep_published else f"until its nextUpdate {_utc(r.next_update)}"
        print(f"  {r.scope.name} #{r.number} stays published {until}")
    return 0


async def cmd_publish(args) -> int:
    async with Context(args, signing=True, writing=True) as repo:
        issued = await repo.issue_due(force=not args.due, issuer_name=args.issuer, actor=os_user())
    for i in issued:
        r = i.record
        print(f"{r.scope.name}: CRL number {r.number}, {r.entries} entries, next update {r.next_update.isoformat()}")
    if not issued:
        print("nothing due")
    return 0


async def cmd_crl_add(args) -> int:
    data = read_input(args.file)
    async with Context(args, writing=True) as repo:
        rec = await repo.add_crl(data, args.file, force=args.force, actor=os_user())
    print(f"published {rec.scope.name}: CRL number {rec.number}, {rec.entries} entries"
          + (f" ({rec.source})" if rec.source != "handed-in" else ""))
    return 0


async def cmd_crl_list(args) -> int:
    async with Context(args) as repo:
        now = repo.clock.now()
        for r in await repo.store.current_crls():
            _, issuer = repo.issuer_by_id(r.scope.issuer_id)
            note = ""
            if issuer.retired_at is not None:
                withdrawn = repo.withdrawn_at(issuer.id, r)
                note = (f"  retired {issuer.retired_at:%Y-%m-%d}, " +
                        ("kept published" if withdrawn is None else
                         ("withdrawn" if withdrawn <= now else f"published until {withdrawn:%Y-%m-%d %H:%M}Z")))
            print(f"{r.scope.name:24} {r.scope.kind.value:9} #{r.number:<6} {r.entries:>8} entries"
                  f"  this {r.this_update:%Y-%m-%d %H:%M}Z  next {r.next_update:%Y-%m-%d %H:%M}Z{note}")
    return 0


def parse_date(text: str) -> dt.date:
    try:
        return dt.date.fromisoformat(text.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a date (use YYYY-MM-DD)") from None


async def cmd_doc_publish(args) -> int:
    data = read_input(args.file)
    async with Context(args, writing=True) as repo:
        rec = await repo.publish_document(kind=args.kind, version=args.version, lang=args.lang,
                                          effective=args.effective, oid=args.oid, data=data, source=args.file,
                                          actor=os_user())
        base = repo.settings.http.base_url
    print(f"published {rec.kind} {rec.version} ({rec.lang}, {rec.media_type.split(';')[0]}, {rec.size} bytes, "
          f"effective {rec.effective.isoformat()}): {base}/{rec.path}")
    print(f"  sha256 {rec.sha256}")
    return 0


async def cmd_doc_list(args) -> int:
    async with Context(args) as repo:
        records = await repo.documents()
        base = repo.settings.http.base_url
    if args.json:
        print(json.dumps([{
            "kind": r.kind, "version": r.version, "lang": r.lang, "effective": r.effective.isoformat(),
            "oid": r.oid, "media_type": r.media_type, "size": r.size, "sha256": r.sha256,
            "published_at": _utc(r.published_at), "url": f"{base}/{r.path}",
        } for r in records], indent=1))
        return 0
    for r in records:
        print(f"{r.kind}\t{r.version}\t{r.lang}\t{r.effective.isoformat()}\t{r.oid or '-'}\t"
              f"{r.media_type.split(';')[0]}\t{r.size}\t{r.sha256}\t{_utc(r.published_at)}\t{r.path}")
    return 0


# The trust list of qualifying certificate types (CP annex 1.2)

def _trust_list(ctx: Context, repo: Repository, *, signing: bool):
    from .errors import ConfigError

    service = trust_list_service(ctx.settings, store=ctx.backend.store, repository=repo, clock=repo.clock,
                                 signing=signing)
    if service is None:
        raise ConfigError(f"{ctx.settings.source}: no [trustlist] section: this repository publishes no trust list")
    return service


def _trust_list_issued(rec, base: str) -> int:
    print(f"trust list {rec.seq} issued {_utc(rec.issued_at)}, next update {_utc(rec.next_update)}: "
          f"{base}/trustlist/{rec.seq}.xml")
    print(f"  sha256 {rec.sha256}")
    return 0


async def cmd_trustlist_add(args) -> int:
    ctx = Context(args, writing=True)
    async with ctx as repo:
        rec = await _trust_list(ctx, repo, signing=True).add(
            ca_name=args.ca, cert_type=args.type, policy_oids=args.policy, cps_url=args.cps,
            names={"zh-Hant": args.name_zh_hant, "en": args.name_en}, at=args.date, actor=os_user())
    return _trust_list_issued(rec, ctx.settings.http.base_url)


def _trustlist_status_command(status_value: str):
    async def run(args) -> int:
        from .trustlist import Status

        ctx = Context(args, writing=True)
        async with ctx as repo:
            rec = await _trust_list(ctx, repo, signing=True).change(
                ca_name=args.ca, cert_type=args.type, status=Status(status_value), at=args.date, actor=os_user())
        return _trust_list_issued(rec, ctx.settings.http.base_url)
    return run


async def cmd_trustlist_reissue(args) -> int:
    ctx = Context(args, writing=True)
    async with ctx as repo:
        rec = await _trust_list(ctx, repo, signing=True).reissue(actor=os_user())
    return _trust_list_issued(rec, ctx.settings.http.base_url)


async def cmd_trustlist_show(args) -> int:
    from .trustlist_xml import parse_xml

    ctx = Context(args)
    async with ctx as repo:
        rec, xml = await _trust_list(ctx, repo, signing=False).get(args.seq)
    if args.xml:
        sys.stdout.buffer.write(xml)
        sys.stdout.buffer.flush()
        return 0
    tl = parse_xml(xml)
    base = ctx.settings.http.base_url
    if args.json:
        print(json.dumps({
            "seq": tl.seq, "issued": _utc(tl.issued), "next_update": _utc(tl.next_update), "sha256": rec.sha256,
            "xml": f"{base}/trustlist/{tl.seq}.xml", "html": f"{base}/trustlist/{tl.seq}/",
            "entries": [{
                "id": e.id, "ca": e.ca_name, "ca_sha256": e.fingerprint, "type": e.cert_type.value,
                "policy_oids": list(e.policy_oids), "cps": e.cps_url, "names": dict(e.names),
                "status": e.status.status.value, "since": _utc(e.status.start),
                "history": [{"status": p.status.value, "since": _utc(p.start)} for p in e.history],
            } for e in tl.entries],
        }, indent=1, ensure_ascii=False))
        return 0
    print(f"trust list {tl.seq}: issued {_utc(tl.issued)}, next update {_utc(tl.next_update)}, sha256 {rec.sha256}")
    print(f"  {base}/trustlist/{tl.seq}.xml  {base}/trustlist/{tl.seq}/")
    for e in tl.entries:
        print(f"{e.ca_name}\t{e.cert_type.value}\t{e.status.status.value} since {_utc(e.status.start)}\t"
              f"{' '.join(e.policy_oids)}\t{e.name('zh-Hant')} / {e.name('en')}")
    return 0


def _notice_json(n) -> dict:
    return {"id": n.id, "kind": n.kind, "title": dict(n.title), "body": dict(n.body), "starts": _utc(n.starts),
            "ends": _utc(n.ends), "published_at": _utc(n.published_at), "withdrawn_at": _utc(n.withdrawn_at)}


async def cmd_notice_add(args) -> int:
    async with Context(args) as repo:
        n = await repo.add_notice(kind=args.kind, titles=[tuple(t) for t in args.title or []],
                                  bodies=[tuple(b) for b in args.body or []], starts=args.start, ends=args.end,
                                  actor=os_user())
        base = repo.settings.http.base_url
    print(f"published notice {n.id} ({n.kind}): {n.title['en']}")
    print(f"  on {base}/ and in {base}/notices.atom")
    return 0


async def cmd_notice_withdraw(args) -> int:
    async with Context(args) as repo:
        n = await repo.withdraw_notice(args.id, actor=os_user())
    print(f"withdrew notice {n.id} ({n.kind}): {n.title['en']}; its record stays (`notice list --all`)")
    return 0


async def cmd_notice_list(args) -> int:
    async with Context(args) as repo:
        found = await repo.notices(withdrawn=args.all)
    if args.json:
        print(json.dumps([_notice_json(n) for n in found], indent=1, ensure_ascii=False))
        return 0
    for n in found:
        print(f"{n.id}\t{n.kind}\t{_utc(n.starts)}\t{_utc(n.ends) or '-'}\t"
              f"{'withdrawn ' + _utc(n.withdrawn_at) if n.withdrawn_at else 'shown'}\t{n.title['zh-Hant']}\t"
              f"{n.title['en']}")
    return 0


def parse_notice_id(text: str) -> int:
    if not (text.isascii() and text.isdigit()) or len(text) > 18:
        raise argparse.ArgumentTypeError(f"{text!r} is not a notice number (see `pkirepo notice list`)")
    return int(text)


async def cmd_import_index(args) -> int:
    from .importer import import_openssl_index

    floor = None
    if args.crlnumber:
        floor = read_crlnumber(Path(args.crlnumber))
    async with Context(args, writing=not args.dry_run) as repo:
        work = import_openssl_index(
            repo, Path(args.index), Path(args.ca), Path(args.certs) if args.certs else None,
            progress=progress_printer("import"), crl_number_floor=floor, dry_run=args.dry_run)
        if args.dry_run:
            n, revoked = await work
        else:
            n, revoked = await audited(repo.audit, os_user(), "cert-import", f"openssl index {args.index}", work,
                                       detail={"ca": args.ca, "crl_number_floor": floor},
                                       done=lambda r: (f"openssl index {args.index}",
                                                       {"certificates": r[0], "revoked": r[1]}))
    if args.dry_run:
        print(f"would import {n} certificate(s), {revoked} revoked or on hold"
              + (f"; CRLs numbered above {floor}" if floor is not None else "") + "; nothing was changed (--dry-run)")
        return 0
    print(f"imported {n} certificate(s), {revoked} revoked or on hold")
    if floor is not None:
        print(f"every CRL of that CA is numbered above {floor} (openssl's crlnumber)")
    return 0


def read_crlnumber(path: Path) -> int:
    """openssl's `crlnumber` file: one hexadecimal number, the next CRL number openssl
    would have used. It is taken as possibly used: our numbering starts above it."""
    try:
        text = path.read_text(encoding="ascii").strip()
    except OSError as e:
        raise MalformedInput(f"{path}: cannot read: {e.strerror}") from None
    except UnicodeDecodeError:
        raise MalformedInput(f"{path}: not an openssl crlnumber file (one hexadecimal number)") from None
    try:
        return parse_serial(text)
    except argparse.ArgumentTypeError:
        raise MalformedInput(f"{path}: {text[:40]!r} is not an openssl crlnumber (one hexadecimal number, "
                             f"at most 20 octets)") from None


async def cmd_init(args) -> int:
    settings = load_settings(config_path(args))
    path = settings.store_path
    existing = await repository_exists(settings)
    if existing is not None:
        raise Conflict(f"{existing}: a store is already there; `pkirepo init` only ever starts a new, empty one")
    published = witness.floors(witness.read_directory(settings.publication_dir / "crl"),
                               witness.Watermark.beside(path).read())
    if published:
        names = ", ".join(f"{n} #{m.number}" for n, m in sorted(published.items()))
        raise StoreBehind(f"CRLs were already published ({names}): a new, empty store would be behind "
                          f"them. Run `pkirepo recover` to rebuild the store from them instead")
    async with Context(args, create=True):
        settings.publication_dir.mkdir(parents=True, exist_ok=True)
    print(f"created an empty store at {store_location(settings)}; next: `pkirepo cert add` or `pkirepo import openssl-index`")
    return 0


async def cmd_check(args) -> int:
    async with Context(args) as repo:
        problems = await repo.store.check()
        for p in problems:
            print(f"store: {p}")
        if not problems:
            print(f"store: {store_location(repo.settings)}: ok")
        try:
            await repo.check_published()
            print(f"published: {repo.settings.publication_dir}: the store holds everything published")
        except StoreBehind as e:
            print(f"published: {e.message}")
            problems.append(e.message)
        version, known = await repo.store.schema_version()
        if version != known:
            problems.append(f"schema version {version}, this pkirepo expects {known}")
            print(f"schema: {problems[-1]}")
        else:
            print(f"schema: version {version}: ok")
        archive = await check_archive(repo.store)
        for p in archive.problems:
            print(f"archive: {p}")
        problems += archive.problems
        note = f" ({archive.unverifiable} with a signature algorithm not verified here)" if archive.unverifiable else ""
        print(f"archive: {archive.checked} CRL(s) checked: SHA-256, signature, numbers increasing per scope"
              + (": ok" if not archive.problems else f": {len(archive.problems)} problem(s)") + note)
    return 2 if problems else 0


async def check_archive(store):
    """Every archived CRL, a page at a time (memory stays flat however large the archive)."""
    from cryptography import x509 as _x509

    from .storecheck import ArchiveCheck

    keys = {i.id: _x509.load_der_x509_certificate(i.cert_der).public_key() for i in await store.issuers()}
    check = ArchiveCheck(keys)
    after = 0
    while True:
        page = await store.archived_crls(after_id=after, limit=100)
        for rec, der in page:
            check.add(rec, der)
        if len(page) < 100:
            return check
        after = page[-1][0].id


def parse_duration(text: str) -> dt.timedelta:
    """`50m`, `2h`, `1h30m`, `90` (minutes), or ISO 8601 `PT50M`."""
    import re

    t = text.strip()
    m = re.fullmatch(r"(?i)(?:PT)?(?:(\d{1,4})H)?(?:(\d{1,6})M?)?", t)
    if not t or not m or not (m.group(1) or m.group(2)):
        raise argparse.ArgumentTypeError(f"{text!r} is not a duration (use 50m, 2h, 1h30m or minutes)")
    value = dt.timedelta(hours=int(m.group(1) or 0), minutes=int(m.group(2) or 0))
    if value <= dt.timedelta(0) or value > dt.timedelta(days=7):
        raise argparse.ArgumentTypeError(f"{text!r}: a window lasts more than 0 and at most 7 days")
    return value


def parse_reason_text(text: str) -> str:
    t = text.strip()
    if not t or len(t) > 500 or not t.isprintable():
        raise argparse.ArgumentTypeError(f"{text[:60]!r}: a reason is 1 to 500 printable characters")
    return t


def parse_window_id(text: str) -> int:
    if not text.isascii() or not text.isdigit() or len(text) > 12:
        raise argparse.ArgumentTypeError(f"{text!r} is not a window id (`pkirepo maintenance list` shows them)")
    return int(text)


async def cmd_maintenance_schedule(args) -> int:
    async with Context(args) as repo:
        budget = repo.maintenance_budget
        now = repo.clock.now()
        w = await repo.schedule_maintenance(args.start, args.start + args.duration, args.reason, actor=os_user())
        windows = await repo.store.maintenance_windows(since=now - dt.timedelta(days=7))
    from .maintenance import busiest_week

    use = busiest_week([x for x in windows if x.id != w.id], w.start, w.end, budget)
    print(f"window {w.id}: {_utc(w.start)} to {_utc(w.end)} ({minutes(w.end - w.start):g} min): {w.reason}")
    print(f"budget: the busiest 7 days around it use {minutes(use.used + (w.end - w.start)):g} of "
          f"{minutes(budget):g} min, {minutes(max(dt.timedelta(0), use.left - (w.end - w.start))):g} min left; "
          f"announced at /status")
    return 0


async def cmd_maintenance_list(args) -> int:
    from .operations import window_json

    async with Context(args) as repo:
        now = repo.clock.now()
        windows = await repo.store.maintenance_windows(since=None if args.all else now - dt.timedelta(days=7))
        budget = repo.settings.ops.maintenance_budget
    rows = [window_json(w, now) for w in windows]
    if args.json:
        print(json.dumps(rows, indent=1))
        return 0
    for r in rows:
        print(f"{r['id']}\t{r['kind']}\t{r['state']}\t{r['start']}\t{r['end'] or '-'}\t{r['minutes']:g} min\t{r['reason']}")
    from .maintenance import used_in_last_week

    print(f"{minutes(used_in_last_week(windows, now)):g} of {minutes(budget):g} min of scheduled maintenance "
          f"in the last 7 days", file=sys.stderr)
    return 0


async def cmd_maintenance_cancel(args) -> int:
    async with Context(args) as repo:
        w = await repo.cancel_maintenance(args.id, actor=os_user())
    print(f"window {w.id} ({_utc(w.start)} to {_utc(w.end)}) cancelled; it stays on record")
    return 0


async def cmd_maintenance_start(args) -> int:
    async with Context(args) as repo:
        w = await repo.start_maintenance(args.reason, actor=os_user())
    print(f"emergency maintenance (window {w.id}) since {_utc(w.start)}: {w.reason}. Changes are refused and "
          f"publication pauses until `pkirepo maintenance end`; reads go on")
    return 0


async def cmd_maintenance_end(args) -> int:
    async with Context(args) as repo:
        w = await repo.end_maintenance(args.reason, actor=os_user())
    print(f"window {w.id} ({w.kind}) ended at {_utc(w.end)} after {minutes(w.end - w.start):g} min; "
          f"publication resumes")
    return 0


async def cmd_availability(args) -> int:
    from .operations import availability

    async with Context(args) as repo:
        weeks = await availability(repo.store, now=repo.clock.now(), weeks=args.weeks,
                                   budget=repo.settings.ops.maintenance_budget)
        downtime = await repo.store.downtime(since=repo.clock.now() - dt.timedelta(days=7 * args.weeks + 7))
    if args.json:
        print(json.dumps({"weeks": weeks, "downtime": [
            {"start": _utc(d.start), "end": _utc(d.end), "minutes": minutes((d.end or repo.clock.now()) - d.start),
             "seconds": int(((d.end or repo.clock.now()) - d.start).total_seconds()), "cause": d.cause}
            for d in downtime]}, indent=1))
        return 0
    print("week starting          availability  unplanned min  outages  maintenance min / budget  emergency min")
    for w in weeks:
        a = "-" if w["availability"] is None else f"{w['availability'] * 100:.3f}%"
        print(f"{w['week_start'][:16]:22} {a:>12}  {w['unplanned_downtime_minutes']:>13g}  {w['outages']:>7}  "
              f"{w['maintenance_minutes']:>11g} / {w['maintenance_budget_minutes']:<12g}  "
              f"{w['emergency_maintenance_minutes']:>13g}")
    for d in downtime:
        print(f"down {_utc(d.start)} to {_utc(d.end) or 'now'}: {d.cause}")
    return 0


async def cmd_backup(args) -> int:
    target = Path(args.file)
    async with Context(args) as repo:
        if target.resolve() == repo.settings.store_path.resolve():
            raise MalformedInput(f"{target}: that is the store itself; back up to another file")
        if not target.parent.is_dir():
            raise MalformedInput(f"{target}: no directory {target.parent}")
        pages = await repo.store.backup_to(target, progress=progress_printer(f"backup to {target}"))
        version, _ = await repo.store.schema_version()
    print(f"backed up {repo.settings.store_path} to {target}: {pages} pages, schema version {version}. "
          f"To restore: stop the server, copy it to store.path, run `pkirepo check`, then `pkirepo recover` "
          f"if check reports the store behind what was published")
    return 0


async def cmd_store_copy(args) -> int:
    from .store_copy import copy_store, endpoint, summary_lines

    source = endpoint("--from", args.source, password_file=args.from_password_file,
                      password_env=args.from_password_env)
    target = endpoint("--to", args.target, password_file=args.to_password_file, password_env=args.to_password_env)
    report = await copy_store(source, target, presigned=not args.no_presigned, now=SystemClock().now(),
                              progress=lambda line: print(line, file=sys.stderr, flush=True))
    print("\n".join(summary_lines(report)))
    return 0


def _server_url(settings, url: str | None) -> str:
    if url:
        return url.rstrip("/")
    host, port = settings.http.listen
    host = {"0.0.0.0": "127.0.0.1", "::": "::1", "": "127.0.0.1"}.get(host, host)
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"


async def cmd_health(args) -> int:
    """The server's /readyz report, one line per component; exit 0 ready (or in maintenance),
    1 not ready, 2 no answer."""
    import urllib.error
    import urllib.request

    settings = load_settings(config_path(args))
    url = _server_url(settings, args.url) + "/readyz"

    def fetch() -> tuple[int, bytes]:
        try:
            with urllib.request.urlopen(url, timeout=args.timeout) as r:
                return r.status, r.read()
        except urllib.error.HTTPError as e:
            return e.code, e.read()

    try:
        status, body = await asyncio.to_thread(fetch)
        report = json.loads(body)
        components = report["components"]
    except (OSError, ValueError, KeyError, TypeError) as e:
        print(f"pkirepo: error: {url}: no readiness report ({e})", file=sys.stderr)
        return 2
    if args.json:
        print(json.dumps(report, indent=1))
    else:
        for name, c in sorted(components.items(), key=lambda kv: (kv[1].get("ready", False), kv[0])):
            figures = " ".join(f"{k}={v if isinstance(v, str) else json.dumps(v)}" for k, v in c.items()
                               if k not in ("ready", "state", "problem"))
            print(f"{'OK  ' if c.get('ready') else 'FAIL'} {name}: {c.get('problem') or c.get('state')}"
                  + (f" ({figures})" if figures else ""))
        verdict = ("in maintenance" + (f" until {report['maintenance_until']}" if report.get("maintenance_until") else "")
                   if report.get("maintenance") else "ready" if report.get("ready") else
                   "NOT READY: " + "; ".join(report.get("failing", [])))
        print(f"{url}: {verdict}")
    return 0 if status == 200 else 1


async def cmd_probe(args) -> int:
    from .probe import ProbeSettings, run_probe

    settings = ProbeSettings(urls=tuple(u.rstrip("/") for u in args.urls), ocsp=tuple(args.ocsp),
                             ldap=args.ldap, state=Path(args.state) if args.state else None,
                             warn=dt.timedelta(minutes=args.warn_minutes),
                             critical=dt.timedelta(minutes=args.critical_minutes), timeout=args.timeout)
    results = await asyncio.to_thread(run_probe, settings)
    for r in results:
        print(r.line())
    return max((r.code for r in results), default=3)



async def cmd_recover(args) -> int:
    from .recovery import recover

    async with Context(args, create=True) as repo:
        sources = [Path(d) for d in args.sources] or [repo.settings.publication_dir / "crl"]
        report = await audited(repo.audit, os_user(), "recover", "store from published CRLs",
                               recover(repo, sources, progress=progress_printer("revocations")),
                               detail={"sources": [str(d) for d in sources]},
                               done=lambda r: ("store from published CRLs",
                                               {"added": r.added, "changed": r.changed}))
    for skipped in report.skipped:
        print(f"skipped {skipped}", file=sys.stderr)
    for sc in report.scopes:
        what = "recorded" if sc.recorded else "the store already holds it or a newer one"
        print(f"{sc.name}: CRL #{sc.number}, {sc.entries} entries, from {sc.source} ({what})")
    print(f"recovered: {report.added} certificate(s) added by serial, {report.changed} status change(s); "
          f"the next CRL of each scope is numbered above the one recovered")
    return 0


# The audit trail


async def cmd_audit_verify(args) -> int:
    from .audit import CheckpointKeys, parse_checkpoint
    from .audit_settings import load_checkpoint_key, load_checkpoint_keys, load_public_key
    from .audit_trail import verify_trail

    ctx = Context(args)
    if args.public_key:
        keys = CheckpointKeys(load_public_key(Path(f), "--public-key") for f in args.public_key)
    else:
        keys = load_checkpoint_keys(ctx.settings.audit, load_checkpoint_key(ctx.settings.audit))
    given = Path(args.checkpoint) if args.checkpoint else None
    path = given or ctx.settings.audit.checkpoint_file
    published = None
    if given is not None or (path is not None and path.exists()):
        published = parse_checkpoint(read_input(path), str(path))
    async with ctx as repo:
        v = await verify_trail(repo.store, keys=keys, published=published,
                               published_source=str(path), progress=progress_printer("records"))
    for note in v.notes:
        print(f"note: {note}", file=sys.stderr)
    if v.problems:
        print(f"TAMPERED: the audit trail does not verify ({len(v.problems)} problem(s)):")
        for problem in v.problems:
            print(f"  {problem}")
        return 1
    span = f"records {v.first} to {v.last}" if v.last else "no records"
    against = f"; matches {path} (record {published.seq})" if published is not None else ""
    print(f"audit trail verified: {span} ({v.records} checked), {v.checkpoints} signed checkpoint(s){against}")
    return 0


async def cmd_audit_export(args) -> int:
    from .audit_trail import records_between

    if args.until is not None and args.until <= args.since:
        raise MalformedInput(f"--until {args.until.isoformat()} is not after --since {args.since.isoformat()}")
    out = Path(args.out) if args.out else None
    async with Context(args) as repo:
        lo, hi, _ = await repo.store.audit_bounds()
        show = progress_printer("audit records") if out is not None else None
        tmp = None if out is None else out.with_name(f".{out.name}.{os.getpid()}.tmp")
        try:
            f = sys.stdout if tmp is None else open(tmp, "w", encoding="utf-8")
        except OSError as e:
            raise MalformedInput(f"--out {out}: cannot write: {e.strerror}") from None
        n = 0
        try:
            async for rec in records_between(repo.store, since=args.since, until=args.until):
                f.write(json.dumps(rec.json(), ensure_ascii=False, separators=(",", ":")) + "\n")
                n += 1
                if show is not None and n % 1000 == 0:
                    show(rec.seq - lo + 1, hi - lo + 1)
            if tmp is not None:
                f.flush()
                os.fsync(f.fileno())
                f.close()
                os.replace(tmp, out)
        finally:
            if tmp is not None and tmp.exists():
                f.close()
                tmp.unlink()
    if out is not None:
        print(f"exported {n} audit record(s) to {out}", file=sys.stderr)
    return 0


async def cmd_audit_show(args) -> int:
    async with Context(args) as repo:
        _, hi, _ = await repo.store.audit_bounds()
        records = await repo.store.audit_records(after_seq=max(0, hi - args.last), limit=args.last)
    for r in records:
        e = r.entry
        who = f"{e.actor_kind}:{e.actor_name}" + (f" from {e.actor_source}" if e.actor_source else "")
        print(f"{r.seq}\t{_utc(e.at)}\t{who}\t{e.action}\t{e.obj}\t{e.result}")
    return 0


async def cmd_audit_checkpoint(args) -> int:
    async with Context(args, signing=True) as repo:
        cp = await repo.audit.checkpoint()
        where = repo.settings.audit.checkpoint_file
    if cp is None:
        raise MalformedInput(f"{repo.settings.source}: no audit.checkpoint_key configured, or no record yet: "
                             f"nothing to sign")
    print(f"checkpoint: record {cp.seq}, head {cp.head}, signed {_utc(cp.at)}; written to {where}")
    return 0


def _last(text: str) -> int:
    if not text.isascii() or not text.isdigit() or not 1 <= int(text) <= 100_000:
        raise argparse.ArgumentTypeError(f"{text!r}: give a number of records from 1 to 100000")
    return int(text)


SERIAL_HELP = ("serial number in hexadecimal, optionally with a 0x prefix or openssl's colons "
               "(4F1A, 0x4F1A, 4F:1A); at most 20 octets")
TIME_HELP = ("ISO 8601 (2026-11-25T02:00:00Z, 2026-11-25, or with an offset) or openssl's "
             "YYYYMMDDHHMMSSZ; UTC when no zone is given; not before 1950")
SERIAL_EXAMPLE = '"$(openssl x509 -in var/demo/pki/revoked.pem -noout -serial | cut -d= -f2)"'


def package_version() -> str:
    try:
        return metadata.version("pkirepo")
    except metadata.PackageNotFoundError:  # run from a source tree that was never installed
        return "unknown"


def parse_ca_serial(text: str) -> tuple[str, int]:
    name, sep, serial = text.partition(":")
    if not sep or not name:
        raise argparse.ArgumentTypeError(f"{text!r} is not CA:SERIAL (e.g. eCertCA2-17:0A1B)")
    try:
        return name, parse_serial(serial)
    except argparse.ArgumentTypeError as e:
        raise argparse.ArgumentTypeError(f"{text!r}: {e}") from None


def _weeks(text: str) -> int:
    if not text.isascii() or not text.isdigit() or not 1 <= int(text) <= 520:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of weeks (1 to 520)")
    return int(text)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="pkirepo", description="A CA repository: CRLs, certificates, OCSP, LDAP.",
        epilog="Serials: " + SERIAL_HELP + ".\nTimes: " + TIME_HELP + ".\n"
               "Example: pkirepo --config var/demo/pkirepo.toml crl list",
        formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--version", action="version", version=f"pkirepo {package_version()}",
                   help="print the installed version and exit")
    p.add_argument("--config", help="config file (default: $PKIREPO_CONFIG, then ./pkirepo.toml)")
    p.add_argument("-v", "--verbose", action="store_true", help="log debugging detail to stderr")
    p.add_argument("--log-format", choices=["human", "json"], default="human",
                   help="log lines on stderr: human-readable (default) or one JSON object per line, with the "
                        "request id of each request")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def cmd(name, func, help, parent=sub, example=None):
        c = parent.add_parser(name, help=help, description=help,
                              epilog=f"Example:\n  {example}" if example else None,
                              formatter_class=argparse.RawDescriptionHelpFormatter)
        c.add_argument("--config", default=argparse.SUPPRESS,
                       help="config file (default: $PKIREPO_CONFIG, then ./pkirepo.toml)")
        c.set_defaults(func=func, command=c.prog.split(" ", 1)[-1].replace(" ", "-"))
        return c

    cmd("init", cmd_init, "create a new, empty store at store.path (never done implicitly)",
        example="pkirepo --config pkirepo.toml init")
    cmd("check", cmd_check, "check the store's integrity and that it holds everything already published",
        example="pkirepo --config var/demo/pkirepo.toml check")
    c = cmd("backup", cmd_backup, "copy the store to FILE while the server runs (SQLite's online backup), with "
            "progress; restore by copying it to store.path with the server stopped",
            example="pkirepo --config var/demo/pkirepo.toml backup var/backup.sqlite")
    c.add_argument("file", metavar="FILE", help="the backup file to write (replaced whole when done)")
    c = cmd("health", cmd_health, "the running server's readiness report (/readyz), one line per component; "
            "exit 0 when ready or in maintenance, 1 when not ready, 2 when the server does not answer",
            example="pkirepo --config var/demo/pkirepo.toml health")
    c.add_argument("--url", help="the server's base URL (default: from http.listen)")
    c.add_argument("--json", action="store_true", help="the report as /readyz gives it")
    c.add_argument("--timeout", type=float, default=10.0, help="seconds to wait for the answer (default 10)")
    c = cmd("probe", cmd_probe,
            "check a repository from outside as a relying party would: every CRL in the index (signature, "
            "CRL number growth, nextUpdate margin), OCSP for given serials, LDAP against HTTP; one line per "
            "check; exit 0 OK, 1 WARNING, 2 CRITICAL, 3 UNKNOWN (Nagios)",
            example="pkirepo probe http://127.0.0.1:8080 --ocsp eCertCA2-17:0A1B --ldap ldap://127.0.0.1:1389 "
                    "--state var/probe.json")
    c.add_argument("urls", nargs="+", metavar="URL", help="base URL of a repository (its /crl/ index is read)")
    c.add_argument("--ocsp", action="append", default=[], metavar="CA:SERIAL", type=parse_ca_serial,
                   help="ask OCSP for this serial (hex) of this CA; repeat for several")
    c.add_argument("--ldap", metavar="URL", help="also fetch each CRL over LDAP (ldap://host:port) and compare bytes")
    c.add_argument("--state", metavar="FILE", help="remembers CRL numbers between runs, to check they grow")
    c.add_argument("--warn-minutes", type=int, default=180, help="WARNING when a nextUpdate is closer (default 180)")
    c.add_argument("--critical-minutes", type=int, default=60,
                   help="CRITICAL when a nextUpdate is closer (default 60)")
    c.add_argument("--timeout", type=float, default=10.0, help="seconds per request (default 10)")
    c = cmd("availability", cmd_availability,
            "availability per week: unplanned downtime, outages, maintenance minutes against the budget",
            example="pkirepo --config var/demo/pkirepo.toml availability --weeks 4")
    c.add_argument("--weeks", type=_weeks, default=4, help="how many weeks, the current one last (default 4)")
    c.add_argument("--json", action="store_true", help="weeks and downtime intervals as JSON")

    mnt = sub.add_parser("maintenance", help="maintenance windows (within the weekly budget)").add_subparsers(
        dest="maintenance_command", required=True, metavar="SUB")
    c = cmd("schedule", cmd_maintenance_schedule,
            "announce a maintenance window; refused (exit 2) when scheduled maintenance in some rolling 7 days "
            "would exceed policy.max_maintenance_minutes_per_week", mnt,
            example='pkirepo maintenance schedule --start 2026-12-05T02:00:00Z --duration 50m --reason "store upgrade"')
    c.add_argument("--start", required=True, type=parse_time, metavar="T", help="when it starts; " + TIME_HELP)
    c.add_argument("--duration", required=True, type=parse_duration, metavar="D", help="50m, 2h, 1h30m or minutes")
    c.add_argument("--reason", required=True, type=parse_reason_text, help="what is done (shown at /status)")
    c = cmd("list", cmd_maintenance_list, "the windows of the last 7 days and those announced", mnt,
            example="pkirepo maintenance list --json")
    c.add_argument("--all", action="store_true", help="every window ever recorded")
    c.add_argument("--json", action="store_true", help="a JSON array, as /status shows them")
    c = cmd("cancel", cmd_maintenance_cancel, "cancel a window that has not started (it stays on record)", mnt,
            example="pkirepo maintenance cancel 3")
    c.add_argument("id", type=parse_window_id, metavar="ID", help="the window's id (maintenance list)")
    c = cmd("start", cmd_maintenance_start, "start emergency maintenance now (recorded as such)", mnt,
            example='pkirepo maintenance start --reason "disk replacement"')
    c.add_argument("--reason", required=True, type=parse_reason_text, help="why")
    c = cmd("end", cmd_maintenance_end, "end the window under way (emergency, or a scheduled one cut short)", mnt,
            example='pkirepo maintenance end --reason "done"')
    c.add_argument("--reason", type=parse_reason_text, help="what was done")

    c = cmd("recover", cmd_recover,
            "rebuild revocations and CRL numbers from published CRLs (default: the publication directory)",
            example="pkirepo --config var/demo/pkirepo.toml recover --from mirror/crl/")
    c.add_argument("--from", dest="sources", action="append", default=[], metavar="DIR",
                   help="a directory (or file) of published CRLs; repeat for several")

    c = cmd("serve", cmd_serve, "serve HTTP (CRLs, certificates, OCSP) and LDAP",
            example="pkirepo --config var/demo/pkirepo.toml serve --http 127.0.0.1:9000")
    c.add_argument("--http", metavar="HOST:PORT", help="HTTP listener (default: http.listen)")
    c.add_argument("--ldap", metavar="HOST:PORT", help="LDAP listener (default: ldap.listen; \"\" turns it off)")
    c.add_argument("--admin", metavar="HOST:PORT", help="the admin API's listener, when [admin] enables it "
                                                        "(default: admin.listen)")
    c.add_argument("--workers", type=int, default=0, metavar="N",
                   help="a supervisor owning the listeners runs N worker processes; SIGHUP restarts them one at "
                        "a time, SIGTERM drains them (default 0: one process)")

    aud = sub.add_parser("audit", help="the audit trail: every change, refusal and CRL issued, hash-chained"
                         ).add_subparsers(dest="audit_command", required=True, metavar="SUB")
    c = cmd("verify", cmd_audit_verify,
            "check the whole hash chain, every stored checkpoint's signature, and the trail against the last "
            "published checkpoint (truncation); names the first bad record; exit 0 good, 1 tampered, 2 bad input",
            aud, example="pkirepo --config var/demo/pkirepo.toml audit verify --checkpoint offsite/checkpoint.json")
    c.add_argument("--checkpoint", metavar="FILE",
                   help="the last published checkpoint (default: audit.checkpoint_file, when it exists)")
    c.add_argument("--public-key", metavar="FILE", action="append",
                   help="check signatures with this PEM public key, to verify away from the signing key; "
                        "repeat it for keys retired by rotation, newest first (default: audit.checkpoint_key "
                        "and audit.checkpoint_previous_keys)")
    c = cmd("export", cmd_audit_export, "write the records of a time range as JSON lines, for archiving", aud,
            example="pkirepo --config var/demo/pkirepo.toml audit export --since 2026-01-01 --out audit-2026.jsonl")
    c.add_argument("--since", required=True, type=parse_time, metavar="T", help="from this time on; " + TIME_HELP)
    c.add_argument("--until", type=parse_time, metavar="T", help="before this time (default: everything since)")
    c.add_argument("--out", metavar="FILE", help="write here (replaced whole when done; default: stdout)")
    c = cmd("show", cmd_audit_show, "the newest records, one line each", aud,
            example="pkirepo --config var/demo/pkirepo.toml audit show --last 20")
    c.add_argument("--last", type=_last, default=20, metavar="N", help="how many (default 20)")
    cmd("checkpoint", cmd_audit_checkpoint, "sign the trail's head now (the server does so every "
        "audit.checkpoint_interval and after each CRL) and write audit.checkpoint_file", aud,
        example="pkirepo --config var/demo/pkirepo.toml audit checkpoint")

    demo = sub.add_parser("demo", help="demo PKI").add_subparsers(dest="demo_command", required=True, metavar="SUB")
    c = cmd("init", cmd_demo_init, "make a demo PKI, config and store in DIR", demo,
            example="pkirepo demo init var/demo --subscribers 200")
    c.add_argument("directory", metavar="DIR", help="directory to create the demo in")
    c.add_argument("--subscribers", type=int, default=1000, help="subscriber certificates (default 1000)")
    c.add_argument("--http", default="127.0.0.1:8080", metavar="HOST:PORT", help="HTTP address baked into URLs")
    c.add_argument("--ldap", default="127.0.0.1:1389", metavar="HOST:PORT", help="LDAP listener")
    c.add_argument("--issuing-key", choices=("rsa", "ec"), default="rsa",
                   help="the issuing CA's key: RSA-2048 (default) or EC P-256, much faster for large demos")
    c.add_argument("--revoke-every", type=int, default=20, metavar="K",
                   help="revoke about one subscriber in K (default 20: 5%%; at least 4)")
    c.add_argument("--bare", action="store_true",
                   help="the PKI, store and CRLs only: no documents or notices (for tests that publish their own)")
    c.add_argument("--admin", default="127.0.0.1:8443", metavar="HOST:PORT",
                   help="the admin API's HTTPS listener (\"\" writes its credentials with the listener off)")

    cert = sub.add_parser("cert", help="certificates").add_subparsers(dest="cert_command", required=True, metavar="SUB")
    c = cmd("add", cmd_cert_add, "add certificates (PEM or DER, bundles and chains allowed); all or nothing", cert,
            example="pkirepo cert add new-certs.pem more.der")
    c.add_argument("files", nargs="+", metavar="FILE", help="certificate files: PEM (one or many) or DER")
    c = cmd("show", cmd_cert_show,
            "show a certificate: status, reason, times, the current CRLs that cover it and whether they list it, "
            "and its OCSP answer", cert,
            example=f"pkirepo cert show --issuer eCertCA2-17 --serial {SERIAL_EXAMPLE}")
    c.add_argument("--issuer", required=True, help="CA name from config")
    c.add_argument("--serial", required=True, type=parse_serial, metavar="HEX", help=SERIAL_HELP)
    c.add_argument("--json", action="store_true",
                   help="one JSON object: stable keys, times ISO 8601 UTC, serial upper-case hex")
    c = cmd("list", cmd_cert_list, "list certificates in (CA, serial) order, streamed", cert,
            example="pkirepo cert list --issuer eCertCA2-17 --status revoked --json")
    c.add_argument("--issuer", help="only this CA (name from config)")
    c.add_argument("--status", choices=["good", "revoked", "hold"], help="only certificates with this status")
    c.add_argument("--expiring-before", type=parse_time, metavar="T",
                   help="only certificates whose notAfter is before T; " + TIME_HELP)
    c.add_argument("--json", action="store_true",
                   help="a JSON array, one object per certificate (the keys of `cert show --json` without crls/ocsp)")

    for name, action, help in [
        ("revoke", Action.REVOKE, "revoke a certificate (final)"),
        ("hold", Action.HOLD, "suspend a certificate (certificateHold)"),
        ("release", Action.RELEASE, "resume a held certificate"),
    ]:
        extra = " --reason keyCompromise" if action is Action.REVOKE else ""
        c = cmd(name, _status_command(action), help,
                example=f"pkirepo {name} --issuer eCertCA2-17 --serial {SERIAL_EXAMPLE}{extra}")
        c.add_argument("--issuer", required=True, help="CA name from config")
        c.add_argument("--serial", required=True, type=parse_serial, metavar="HEX", help=SERIAL_HELP)
        if action is not Action.RELEASE:
            c.add_argument("--time", type=parse_time, metavar="T",
                           help="when it took effect (default: now); not in the future, not before notBefore; "
                                + TIME_HELP)
        if action is Action.REVOKE:
            c.add_argument("--reason", type=parse_reason, metavar="R",
                           help="keyCompromise, cACompromise, affiliationChanged, superseded, "
                                "cessationOfOperation, privilegeWithdrawn, aACompromise, unspecified; omit for none")
            c.add_argument("--invalidity-date", type=parse_time, metavar="T",
                           help="when the key is known or suspected to have been compromised (not after --time); "
                                + TIME_HELP)
        c.add_argument("--dry-run", action="store_true", help="show what would change and write nothing")

    c = cmd("publish", cmd_publish, "issue CRLs now (all, or --due: only those due)",
            example="pkirepo publish --issuer eCertCA2-17")
    c.add_argument("--issuer", help="only this CA")
    c.add_argument("--due", action="store_true", help="only CRLs that are due by the schedule")

    crl = sub.add_parser("crl", help="CRLs").add_subparsers(dest="crl_command", required=True, metavar="SUB")
    c = cmd("add", cmd_crl_add, "publish a CRL signed elsewhere (offline root)", crl,
            example="pkirepo crl add RootCA2ARL.crl")
    c.add_argument("file", metavar="FILE", help="the CRL, DER or PEM")
    c.add_argument("--force", action="store_true",
                   help="publish even if it omits revocations the repository holds (recorded with the CRL)")
    cmd("list", cmd_crl_list, "list the current CRLs (and which CAs are retired)", crl, example="pkirepo crl list")

    conf = sub.add_parser("config", help="the config file").add_subparsers(
        dest="config_command", required=True, metavar="SUB")
    c = cmd("check", cmd_config_check,
            "validate the config as the server would (settings, policy, CA certificates, keys and their "
            "passphrases, OCSP responders) without starting and without the store; exit 2 listing every problem",
            conf, example="pkirepo config check var/demo/pkirepo.toml")
    c.add_argument("file", nargs="?", metavar="FILE", help="config file (default: --config, $PKIREPO_CONFIG, ./pkirepo.toml)")

    ca = sub.add_parser("ca", help="certification authorities").add_subparsers(
        dest="ca_command", required=True, metavar="SUB")
    c = cmd("retire", cmd_ca_retire,
            "take a CA out of service: its CRLs are no longer issued and it needs no key; its archive stays and "
            "its last CRLs stay published until their nextUpdate", ca, example="pkirepo ca retire eCertCA2-17")
    c.add_argument("name", metavar="NAME", help="CA name from config")
    c.add_argument("--keep-published", action="store_true", help="keep its last CRLs published for good")

    doc = sub.add_parser("doc", help="disclosure documents (CPS, CP, agreements)").add_subparsers(
        dest="doc_command", required=True, metavar="SUB")
    c = cmd("publish", cmd_doc_publish,
            "publish a new version of a document (PDF or HTML, told from its contents); earlier versions stay "
            "published", doc,
            example="pkirepo doc publish --kind cps --version 2.1 --effective 2026-12-01 --lang zh-Hant cps.pdf")
    c.add_argument("--kind", required=True, help="cps, cp, subscriber-agreement, relying-party-agreement, pds, "
                                                  "or a kind from [documents] kinds")
    c.add_argument("--version", required=True, help="the document's version, e.g. 2.1")
    c.add_argument("--effective", required=True, type=parse_date, metavar="YYYY-MM-DD",
                   help="when it takes effect; not before the current version's")
    c.add_argument("--lang", required=True, help="zh-Hant, en or zh-Hans")
    c.add_argument("--oid", help="the document's OID, where it has one")
    c.add_argument("file", metavar="FILE", help="the document: a PDF, or UTF-8 HTML")
    c = cmd("list", cmd_doc_list, "the disclosure record: every publication, in order", doc,
            example="pkirepo doc list --json")
    c.add_argument("--json", action="store_true", help="a JSON array, one object per publication")

    tl = sub.add_parser("trustlist", help="the trust list of certificate types qualifying for mutual recognition"
                        ).add_subparsers(dest="trustlist_command", required=True, metavar="SUB")

    def entry_args(c, date_help):
        c.add_argument("--ca", required=True, metavar="NAME", help="the issuing CA's name from config")
        c.add_argument("--type", required=True, metavar="TYPE", help="personal or organisation")
        c.add_argument("--date", type=parse_time, metavar="T",
                       help=date_help + "; not in the future, not before the current status began; " + TIME_HELP)

    c = cmd("add", cmd_trustlist_add,
            "list a certificate type of a CA as granted; issues the next list, signed", tl,
            example="pkirepo trustlist add --ca eCertCA2-17 --type personal --cps http://127.0.0.1:8080/cps "
                    "--name-zh-Hant 香港郵政個人證書 --name-en 'Hongkong Post personal e-Cert'")
    entry_args(c, "when the grant takes effect (default: now)")
    c.add_argument("--policy", action="append", metavar="OID",
                   help="a policy OID of the CP for that type (repeat; default: every OID of the type)")
    c.add_argument("--cps", required=True, metavar="URL", help="the CPS that applies (http:// or https:// URL)")
    c.add_argument("--name-zh-Hant", dest="name_zh_hant", metavar="NAME", help="the entry's name in Traditional Chinese")
    c.add_argument("--name-en", dest="name_en", metavar="NAME", help="the entry's name in English")
    for name, status, help in [
        ("suspend", "suspended", "suspend a granted entry"),
        ("reinstate", "granted", "grant a suspended entry again"),
        ("withdraw", "withdrawn", "withdraw a granted or suspended entry (final)"),
    ]:
        c = cmd(name, _trustlist_status_command(status), help + "; issues the next list, signed", tl,
                example=f"pkirepo trustlist {name} --ca eCertCA2-17 --type organisation")
        entry_args(c, "when it takes effect (default: now)")
    cmd("reissue", cmd_trustlist_reissue, "issue the next list with the same entries (before the next update is due)",
        tl, example="pkirepo trustlist reissue")
    c = cmd("show", cmd_trustlist_show, "show the current list, or an earlier one", tl,
            example="pkirepo trustlist show --seq 1 --xml")
    c.add_argument("--seq", type=int, metavar="N", help="an earlier list by its sequence number")
    out = c.add_mutually_exclusive_group()
    out.add_argument("--json", action="store_true", help="one JSON object")
    out.add_argument("--xml", action="store_true", help="the signed XML as published")
    notice = sub.add_parser("notice", help="notices on the home page and in /notices.atom").add_subparsers(
        dest="notice_command", required=True, metavar="SUB")
    c = cmd("add", cmd_notice_add,
            "publish a notice (CA certificate suspension, revocation or non-renewal, incident, maintenance) with its "
            "title and body in zh-Hant and en", notice,
            example='pkirepo notice add --kind maintenance --start 2026-12-05T18:00:00Z --end 2026-12-05T19:00:00Z '
                    '--title zh-Hant "系統維護" --title en "Maintenance" --body zh-Hant "..." --body en "..."')
    c.add_argument("--kind", required=True,
                   help="ca-suspension, ca-revocation, ca-non-renewal, incident or maintenance")
    c.add_argument("--title", action="append", nargs=2, metavar=("LANG", "TEXT"),
                   help="the title in one language; give it for zh-Hant and for en")
    c.add_argument("--body", action="append", nargs=2, metavar=("LANG", "TEXT"),
                   help="the text in one language; give it for zh-Hant and for en")
    c.add_argument("--start", type=parse_time, metavar="T",
                   help="when it takes effect, or a maintenance window starts (default: now); " + TIME_HELP)
    c.add_argument("--end", type=parse_time, metavar="T",
                   help="when a maintenance window (required) or an incident ends; " + TIME_HELP)
    c = cmd("withdraw", cmd_notice_withdraw, "take a notice off the pages and the feed (its record stays)", notice,
            example="pkirepo notice withdraw 3")
    c.add_argument("id", type=parse_notice_id, metavar="ID", help="the notice's number (`pkirepo notice list`)")
    c = cmd("list", cmd_notice_list, "the notices shown, newest first", notice, example="pkirepo notice list --all")
    c.add_argument("--all", action="store_true", help="withdrawn notices too")
    c.add_argument("--json", action="store_true", help="a JSON array, one object per notice")

    store = sub.add_parser("store", help="the store itself").add_subparsers(
        dest="store_command", required=True, metavar="SUB")
    c = cmd("copy", cmd_store_copy,
            "copy a whole repository between stores, SQLite or PostgreSQL either way, into an empty destination; "
            "progress on stderr, then rows per table, the latest CRL of every scope and the change log are "
            "verified; an interrupted copy leaves the destination marked incomplete, refused by every command",
            store, example="pkirepo store copy --from var/demo/pkirepo.sqlite --to postgresql://pkirepo@db1/pkirepo "
                           "--to-password-file /etc/pkirepo/db-password")
    c.add_argument("--from", dest="source", required=True, metavar="SRC",
                   help="the store to copy: a SQLite file or a postgresql://user@host:port/db URL (no password)")
    c.add_argument("--to", dest="target", required=True, metavar="DST",
                   help="the new store: a SQLite file that does not exist yet, or the URL of an empty database")
    for side in ("from", "to"):
        c.add_argument(f"--{side}-password-file", metavar="FILE",
                       help=f"the password for the --{side} URL, read from this file")
        c.add_argument(f"--{side}-password-env", metavar="VAR",
                       help=f"the password for the --{side} URL, from this environment variable "
                            f"(default: PGPASSWORD or ~/.pgpass, as libpq reads them)")
    c.add_argument("--no-presigned", action="store_true",
                   help="leave out the pre-signed OCSP answers (copied by default): the new store's responder "
                        "signs them again")

    imp = sub.add_parser("import", help="migrate from other CA software").add_subparsers(
        dest="import_command", required=True, metavar="SUB")
    c = cmd("openssl-index", cmd_import_index, "import an `openssl ca` index.txt", imp,
            example="pkirepo import openssl-index demoCA/index.txt --ca demoCA/cacert.pem --certs demoCA/newcerts "
                    "--crlnumber demoCA/crlnumber")
    c.add_argument("index", metavar="INDEX", help="the index.txt of the openssl CA")
    c.add_argument("--ca", required=True, metavar="CA.pem", help="the CA certificate of that database")
    c.add_argument("--certs", metavar="DIR", help="directory with the certificates as <SERIAL>.pem (optional)")
    c.add_argument("--crlnumber", metavar="FILE",
                   help="openssl's crlnumber file: every CRL of that CA is then numbered above it")
    c.add_argument("--dry-run", action="store_true", help="check everything and show what would change; write nothing")
    return p


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    configure_logs(logging.DEBUG if args.verbose else logging.INFO, args.log_format)
    # aiosqlite logs every database call at DEBUG: thousands of lines that drown -v.
    logging.getLogger("aiosqlite").setLevel(logging.WARNING)
    # pypdf logs each repair it attempts on a damaged PDF; `doc publish` gives one verdict.
    logging.getLogger("pypdf").setLevel(logging.ERROR)
    try:
        return asyncio.run(args.func(args))
    except RepoError as e:
        print(f"pkirepo: error: {e.message}", file=sys.stderr)
        return e.cli_exit
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
