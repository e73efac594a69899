"""`pkirepo recover`: bring a lost or outdated store back from the CRLs already published.

A CRL holds every revoked serial of its scope with its date, reason and invalidity date, and
its own number. Recovery verifies each CRL against its configured CA, takes the newest one of
every scope, and then:
- a serial the store does not know is added as a certificate known only by its serial (its
  file can be added later with `cert add`), revoked or on hold as the CRL says;
- a certificate the store holds as good (or on hold, where the CRL says revoked) is changed;
- the CRL itself is recorded, so the scope's next number is above it.
Nothing the store already holds is lowered: a revocation stays final, and a store that is
ahead of a CRL keeps its own state.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from cryptography import x509

from . import crl as crlmod
from .crl import Reason, ScopeKind
from .errors import MalformedInput, RepoError
from .service import IdentifiedCrl, Repository
from .store import Action, NewCert, Status, StatusChange


@dataclass
class ScopeReport:
    name: str
    number: int
    entries: int
    source: str
    recorded: bool = False


@dataclass
class RecoveryReport:
    scopes: list[ScopeReport] = field(default_factory=list)
    added: int = 0  # serials the store did not know
    changed: int = 0  # certificates whose status was brought forward
    skipped: list[str] = field(default_factory=list)  # files that were not usable, and why


def crl_files(sources: list[Path]) -> list[Path]:
    """Every `*.crl` in the given directories (or the files themselves), in a stable order."""
    out: list[Path] = []
    for src in sources:
        if src.is_dir():
            out += sorted(src.glob("*.crl"))
        elif src.is_file():
            out.append(src)
        else:
            raise MalformedInput(f"{src}: no such file or directory")
    return out


async def recover(repo: Repository, sources: list[Path], *,
                  progress: Callable[[int, int], None] | None = None) -> RecoveryReport:
    report = RecoveryReport()
    newest: dict[str, IdentifiedCrl] = {}
    origin: dict[str, Path] = {}
    for path in crl_files(sources):
        try:
            found = await repo.identify_crl(path.read_bytes(), str(path))
        except (RepoError, OSError) as e:
            report.skipped.append(f"{path}: {getattr(e, 'message', e)}")
            continue
        old = newest.get(found.scope.name)
        if old is None or found.number > old.number:
            newest[found.scope.name] = found
            origin[found.scope.name] = path
    if not newest:
        raise MalformedInput("no usable CRL found in " + ", ".join(str(s) for s in sources))

    # One wanted state per certificate; a partition also tells the distribution point.
    wanted: dict[tuple[int, int], tuple[Status, Reason | None, object, object, str | None, bool]] = {}
    for found in newest.values():
        dp_url = found.scope.dp_url if found.scope.kind is ScopeKind.PARTITION else None
        is_ca = found.scope.kind is ScopeKind.ARL
        for entry in found.crl:
            reason, invalidity = _entry_extensions(entry)
            status = Status.HOLD if reason is Reason.certificateHold else Status.REVOKED
            key = (found.issuer.id, entry.serial_number)
            prev = wanted.get(key)
            if prev is not None and prev[0] is Status.REVOKED and status is Status.HOLD:
                continue  # another scope already says revoked: that is final
            wanted[key] = (status, reason, entry.revocation_date_utc, invalidity,
                           dp_url or (prev[4] if prev else None), is_ca)

    policy = repo.settings.crl.reason_policy
    now = repo.clock.now()
    new: list[NewCert] = []
    total = len(wanted)
    for done, ((issuer_id, serial), (status, reason, at, invalidity, dp_url, is_ca)) in enumerate(wanted.items(), 1):
        entry = crlmod.encode_entry(serial, at, reason, invalidity, policy)
        rec = await repo.store.certificate(issuer_id, serial)
        if rec is None:
            new.append(NewCert(issuer_id, serial, None, None, None, None, dp_url, is_ca,
                               status, reason, at, invalidity, entry))
        elif rec.status is Status.GOOD or (rec.status is Status.HOLD and status is Status.REVOKED):
            action = Action.HOLD if status is Status.HOLD else Action.REVOKE
            await repo.store.change_status(StatusChange(issuer_id, serial, action, reason, at, invalidity, entry))
            report.changed += 1
        if progress is not None:
            progress(done, total)
    if new:
        report.added = await repo.store.add_certificates(new, at=now)

    covered = await repo.store.change_token()
    latest = {r.scope.name: r for r in await repo.store.current_crls()}
    for name, found in sorted(newest.items()):
        item = ScopeReport(name, found.number, len(found.crl), str(origin[name]))
        rec = latest.get(name)
        if rec is None or rec.number < found.number:
            await repo.store.record_crl(
                found.scope, found.number, found.crl.last_update_utc, found.crl.next_update_utc, found.der,
                entries=len(found.crl), covered_event=covered, issued_at=now, source="recovered")
            item.recorded = True
        report.scopes.append(item)
    # The directory now matches the store again (the same bytes, or the store's newer ones).
    await repo.check_published()
    await repo.sync_files()
    return report


def _entry_extensions(entry: x509.RevokedCertificate):
    reason = invalidity = None
    for ext in entry.extensions:
        if isinstance(ext.value, x509.CRLReason):
            reason = Reason[ext.value.reason.value]  # ReasonFlags values are the RFC names
        elif isinstance(ext.value, x509.InvalidityDate):
            invalidity = ext.value.invalidity_date_utc
    return reason, invalidity
