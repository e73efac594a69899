"""The `pkirepo` command line. Errors name the file, key or value at fault and exit
non-zero (2 for bad input or a refused change)."""
from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import logging
import os
import sys
from pathlib import Path

from .clock import SystemClock
from .config import parse_listen
from . import witness
from .crl import EARLIEST_TIME, Reason
from .errors import Conflict, MalformedInput, RepoError, StoreBehind
from .root import Backend, Settings, load_settings, open_backend
from .service import Repository, load_signers
from .store import Action

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

    def __init__(self, args, *, signing: bool = False, create: bool = False) -> None:
        self.settings: Settings = load_settings(config_path(args))
        self.signing = signing
        self.create = create
        self.backend: Backend | None = None

    async def __aenter__(self) -> Repository:
        signers = load_signers(self.settings) if self.signing else {}
        self.backend = await open_backend(self.settings, create=self.create)
        try:
            self.repo = Repository(self.settings, store=self.backend.store, signers=signers, clock=SystemClock())
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
    from .server import serve

    settings = load_settings(config_path(args))
    http = parse_listen(args.http) if args.http else settings.http.listen
    return await serve(settings, http=http, ldap=args.ldap)


async def cmd_demo_init(args) -> int:
    from .demo import demo_summary, init_demo

    try:
        parse_listen(args.http)
        parse_listen(args.ldap)
    except ValueError as e:
        raise MalformedInput(f"--http/--ldap: {e}") from None
    config, pki, repo = await init_demo(
        Path(args.directory), http=args.http, ldap=args.ldap, subscribers=args.subscribers, clock=SystemClock(),
        progress=progress_printer("subscriber certificates"))
    print(demo_summary(config, pki, repo.settings))
    return 0


async def cmd_cert_add(args) -> int:
    items = []
    for f in args.files:
        try:
            items.append((Path(f).read_bytes(), f))
        except OSError as e:
            raise MalformedInput(f"{f}: cannot read: {e.strerror}") from None
    async with Context(args) as repo:
        n = await repo.add_certificates(items)
    print(f"added {n} certificate(s)")
    return 0


def _status_command(action: Action):
    async def run(args) -> int:
        async with Context(args) as repo:
            rec = await repo.change_status(
                args.issuer, args.serial, action,
                reason=getattr(args, "reason", None),
                at=getattr(args, "time", None),
                invalidity=getattr(args, "invalidity_date", None))
        print(f"{args.issuer} {rec.serial_hex}: {rec.status.name.lower()}"
              + (f" ({rec.reason.name})" if rec.reason is not None else ""))
        return 0

    return run


async def cmd_publish(args) -> int:
    async with Context(args, signing=True) as repo:
        issued = await repo.issue_due(force=not args.due, issuer_name=args.issuer)
    for i in issued:
        r = i.record
        print(f"{r.scope.name}: CRL number {r.number}, {r.entries} entries, next update {r.next_update.isoformat()}")
    if not issued:
        print("nothing due")
    return 0


async def cmd_crl_add(args) -> int:
    try:
        data = Path(args.file).read_bytes()
    except OSError as e:
        raise MalformedInput(f"{args.file}: cannot read: {e.strerror}") from None
    async with Context(args) as repo:
        rec = await repo.add_crl(data, args.file, force=args.force)
    print(f"published {rec.scope.name}: CRL number {rec.number}, {rec.entries} entries"
          + (f" ({rec.source})" if rec.source != "handed-in" else ""))
    return 0


async def cmd_crl_list(args) -> int:
    async with Context(args) as repo:
        for r in await repo.store.current_crls():
            print(f"{r.scope.name:24} {r.scope.kind.value:9} #{r.number:<6} {r.entries:>8} entries"
                  f"  this {r.this_update:%Y-%m-%d %H:%M}Z  next {r.next_update:%Y-%m-%d %H:%M}Z")
    return 0


async def cmd_import_index(args) -> int:
    from .importer import import_openssl_index

    async with Context(args) as repo:
        n, revoked = await import_openssl_index(
            repo, Path(args.index), Path(args.ca), Path(args.certs) if args.certs else None,
            progress=progress_printer("import"))
    print(f"imported {n} certificate(s), {revoked} revoked or on hold")
    return 0


async def cmd_init(args) -> int:
    settings = load_settings(config_path(args))
    path = settings.store_path
    if path.exists() and path.stat().st_size > 0:
        raise Conflict(f"{path}: a store is already there; `pkirepo init` only ever starts a new, empty one")
    published = witness.floors(witness.read_directory(settings.publication_dir / "crl"),
                               witness.Watermark.beside(path).read())
    if published:
        names = ", ".join(f"{n} #{m.number}" for n, m in sorted(published.items()))
        raise StoreBehind(f"CRLs were already published ({names}): a new, empty store would be behind "
                          f"them. Run `pkirepo recover` to rebuild the store from them instead")
    async with Context(args, create=True):
        settings.publication_dir.mkdir(parents=True, exist_ok=True)
    print(f"created an empty store at {path}; next: `pkirepo cert add` or `pkirepo import openssl-index`")
    return 0


async def cmd_check(args) -> int:
    async with Context(args) as repo:
        problems = await repo.store.check()
        for p in problems:
            print(f"store: {p}")
        if not problems:
            print(f"store: {repo.settings.store_path}: ok")
        try:
            await repo.check_published()
            print(f"published: {repo.settings.publication_dir}: the store holds everything published")
        except StoreBehind as e:
            print(f"published: {e.message}")
            problems.append(e.message)
    return 2 if problems else 0


async def cmd_recover(args) -> int:
    from .recovery import recover

    async with Context(args, create=True) as repo:
        sources = [Path(d) for d in args.sources] or [repo.settings.publication_dir / "crl"]
        report = await recover(repo, sources, progress=progress_printer("revocations"))
    for skipped in report.skipped:
        print(f"skipped {skipped}", file=sys.stderr)
    for sc in report.scopes:
        what = "recorded" if sc.recorded else "the store already holds it or a newer one"
        print(f"{sc.name}: CRL #{sc.number}, {sc.entries} entries, from {sc.source} ({what})")
    print(f"recovered: {report.added} certificate(s) added by serial, {report.changed} status change(s); "
          f"the next CRL of each scope is numbered above the one recovered")
    return 0


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="pkirepo", description="A CA repository: CRLs, certificates, OCSP, LDAP.")
    p.add_argument("--config", help="config file (default: $PKIREPO_CONFIG, then ./pkirepo.toml)")
    p.add_argument("-v", "--verbose", action="store_true")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def cmd(name, func, help, parent=sub):
        c = parent.add_parser(name, help=help, description=help)
        c.add_argument("--config", default=argparse.SUPPRESS, help="config file")
        c.set_defaults(func=func)
        return c

    cmd("init", cmd_init, "create a new, empty store at store.path (never done implicitly)")
    cmd("check", cmd_check, "check the store's integrity and that it holds everything already published")
    c = cmd("recover", cmd_recover,
            "rebuild revocations and CRL numbers from published CRLs (default: the publication directory)")
    c.add_argument("--from", dest="sources", action="append", default=[], metavar="DIR",
                   help="a directory (or file) of published CRLs; repeat for several")

    c = cmd("serve", cmd_serve, "serve HTTP (CRLs, certificates, OCSP) and LDAP")
    c.add_argument("--http", metavar="HOST:PORT", help="HTTP listener (default: http.listen)")
    c.add_argument("--ldap", metavar="HOST:PORT", help="LDAP listener (default: ldap.listen)")

    demo = sub.add_parser("demo", help="demo PKI").add_subparsers(dest="demo_command", required=True, metavar="SUB")
    c = cmd("init", cmd_demo_init, "make a demo PKI, config and store in DIR", demo)
    c.add_argument("directory", metavar="DIR")
    c.add_argument("--subscribers", type=int, default=1000, help="subscriber certificates (default 1000)")
    c.add_argument("--http", default="127.0.0.1:8080", metavar="HOST:PORT", help="HTTP address baked into URLs")
    c.add_argument("--ldap", default="127.0.0.1:1389", metavar="HOST:PORT", help="LDAP listener")

    cert = sub.add_parser("cert", help="certificates").add_subparsers(dest="cert_command", required=True, metavar="SUB")
    c = cmd("add", cmd_cert_add, "add certificates (PEM or DER, bundles and chains allowed)", cert)
    c.add_argument("files", nargs="+", metavar="FILE")

    for name, action, help in [
        ("revoke", Action.REVOKE, "revoke a certificate (final)"),
        ("hold", Action.HOLD, "suspend a certificate (certificateHold)"),
        ("release", Action.RELEASE, "resume a held certificate"),
    ]:
        c = cmd(name, _status_command(action), help)
        c.add_argument("--issuer", required=True, help="CA name from config")
        c.add_argument("--serial", required=True, type=parse_serial, metavar="HEX",
                       help="serial number in hex (0x prefix and colons allowed), at most 20 octets")
        if action is not Action.RELEASE:
            c.add_argument("--time", type=parse_time, metavar="T", help="when (default: now)")
        if action is Action.REVOKE:
            c.add_argument("--reason", type=parse_reason, metavar="R",
                           help="keyCompromise, cACompromise, affiliationChanged, superseded, "
                                "cessationOfOperation, privilegeWithdrawn, aACompromise, unspecified; omit for none")
            c.add_argument("--invalidity-date", type=parse_time, metavar="T")

    c = cmd("publish", cmd_publish, "issue CRLs now (all, or --due: only those due)")
    c.add_argument("--issuer", help="only this CA")
    c.add_argument("--due", action="store_true", help="only CRLs that are due by the schedule")

    crl = sub.add_parser("crl", help="CRLs").add_subparsers(dest="crl_command", required=True, metavar="SUB")
    c = cmd("add", cmd_crl_add, "publish a CRL signed elsewhere (offline root)", crl)
    c.add_argument("file", metavar="FILE")
    c.add_argument("--force", action="store_true",
                   help="publish even if it omits revocations the repository holds (recorded with the CRL)")
    cmd("list", cmd_crl_list, "list the current CRLs", crl)

    imp = sub.add_parser("import", help="migrate from other CA software").add_subparsers(
        dest="import_command", required=True, metavar="SUB")
    c = cmd("openssl-index", cmd_import_index, "import an `openssl ca` index.txt", imp)
    c.add_argument("index", metavar="INDEX")
    c.add_argument("--ca", required=True, metavar="CA.pem", help="the CA certificate of that database")
    c.add_argument("--certs", metavar="DIR", help="directory with the certificates as <SERIAL>.pem (optional)")
    return p


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        return asyncio.run(args.func(args))
    except RepoError as e:
        print(f"pkirepo: error: {e.message}", file=sys.stderr)
        return e.cli_exit
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
