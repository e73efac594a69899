"""The store interface. Everything else receives a `Store` by injection.

`SQLiteStore` (sqlite_store.py) is the embedded default; a shared server database for
several replicas later implements the same methods. Records are frozen dataclasses; times
are aware UTC datetimes; serial numbers and CRL numbers are Python ints (up to 20 octets).
"""
from __future__ import annotations

import abc
import asyncio
import datetime as dt
import enum
from dataclasses import dataclass
from typing import AsyncIterable, Mapping, NamedTuple, Protocol, Sequence

from .audit import Checkpoint as AuditCheckpoint, Entry as AuditEntry, Record as AuditRecord
from .crl import Reason, ScopeKind
from .errors import Conflict
from .maintenance import Downtime, Window
from .trustlist import Entry as TrustEntry
from .notices import NewNotice


class Status(enum.IntEnum):
    GOOD = 0
    REVOKED = 1
    HOLD = 2


class Action(str, enum.Enum):
    REVOKE = "revoke"
    HOLD = "hold"
    RELEASE = "release"


def transition(current: Status, action: Action, serial_hex: str) -> Status:
    """The status rules: a hold may be released or become a revocation; a revocation is
    final. Raises Conflict for anything else."""
    if current is Status.REVOKED:
        raise Conflict(f"certificate {serial_hex} is already revoked; a revocation is final")
    if action is Action.REVOKE:
        return Status.REVOKED
    if action is Action.HOLD:
        if current is Status.HOLD:
            raise Conflict(f"certificate {serial_hex} is already on hold")
        return Status.HOLD
    if current is not Status.HOLD:
        raise Conflict(f"certificate {serial_hex} is not on hold; only a held certificate can be released")
    return Status.GOOD


@dataclass(frozen=True)
class Issuer:
    id: int
    name: str
    subject_der: bytes
    key_id: bytes
    cert_der: bytes
    # When the CA was taken out of service (`pkirepo ca retire`): its CRLs are no longer
    # issued; its last ones stay published until their nextUpdate, or for good.
    retired_at: dt.datetime | None = None
    keep_published: bool = False


class NewCert(NamedTuple):
    """A certificate to add. Imports may add one already revoked, with its entry.

    A NamedTuple rather than a dataclass: imports make a million of them, in worker
    processes, so bulk producers may also give times as Unix seconds and status and reason
    as their int values (cheap to pickle); stores accept both."""

    issuer_id: int
    serial: int
    der: bytes | None
    subject: str | None
    not_before: dt.datetime | None
    not_after: dt.datetime | None
    dp_url: str | None
    is_ca: bool
    status: Status = Status.GOOD
    reason: Reason | None = None
    revoked_at: dt.datetime | None = None
    invalidity_at: dt.datetime | None = None
    entry: bytes | None = None  # pre-encoded CRL entry when status is not GOOD


@dataclass(frozen=True)
class CertRecord:
    id: int
    issuer_id: int
    serial: int
    der: bytes | None
    subject: str | None
    not_before: dt.datetime | None
    not_after: dt.datetime | None
    dp_url: str | None
    is_ca: bool
    status: Status
    reason: Reason | None
    revoked_at: dt.datetime | None
    invalidity_at: dt.datetime | None

    @property
    def serial_hex(self) -> str:
        return serial_hex(self.serial)


@dataclass(frozen=True)
class StatusChange:
    issuer_id: int
    serial: int
    action: Action
    reason: Reason | None
    at: dt.datetime
    invalidity_at: dt.datetime | None
    entry: bytes | None  # the CRL entry to publish (None for release)


@dataclass(frozen=True)
class Scope:
    id: int
    issuer_id: int
    kind: ScopeKind
    dp_url: str  # '' unless a partition (or an ARL with a distribution point)
    name: str


@dataclass(frozen=True)
class CrlRecord:
    id: int
    scope: Scope
    number: int
    this_update: dt.datetime
    next_update: dt.datetime
    sha256: str
    size: int
    entries: int
    covered_event: int
    issued_at: dt.datetime
    source: str


@dataclass(frozen=True)
class EntrySnapshot:
    """The entries of one scope, read in one consistent snapshot."""

    entries: bytes  # concatenated DER, sorted by serial
    count: int
    covered_event: int  # the newest change-log event visible in that snapshot


@dataclass(frozen=True)
class Event:
    id: int
    at: dt.datetime
    kind: str
    issuer_id: int | None
    cert_id: int | None
    detail: str | None

    def certificate(self) -> tuple[int, int] | None:
        """(issuer id, serial) of a status change (`detail` holds the serial in hex), or None
        when the event does not say which certificate."""
        try:
            serial = int(self.detail or "", 16)
        except ValueError:
            return None
        return None if self.issuer_id is None else (self.issuer_id, serial)


#: Change-log kinds that change one certificate's status.
CERT_EVENTS = frozenset({"revoke", "hold", "release"})


def abandoned_claim(recorded_hash: str, status: int | None, created_at: int, request_hash: str,
                    abandoned_before: dt.datetime | None) -> bool:
    """Whether a recorded idempotency claim (created at Unix second `created_at`) is one a
    dead process left in progress, which the same request may take over."""
    return (abandoned_before is not None and status is None and recorded_hash == request_hash
            and created_at < int(abandoned_before.timestamp()))


@dataclass(frozen=True)
class IdempotentAnswer:
    """What a change request sent with an `Idempotency-Key` was answered, kept so that a
    retry is answered the same without changing anything twice. `status` None: the first
    request is still being carried out."""

    key: str
    actor: str  # who sent it (`Actor` kind and name): keys are per client
    request_hash: str  # SHA-256 of method, path and body: the same key with another body is refused
    status: int | None
    body: bytes | None
    created_at: dt.datetime


@dataclass(frozen=True)
class DocumentRecord:
    """One publication of a disclosure document (CP 四.9): the disclosure record lists
    every one, oldest first, and none is ever removed."""

    id: int
    kind: str
    version: str
    lang: str
    effective: dt.date
    oid: str | None
    media_type: str
    ext: str
    size: int
    sha256: str
    published_at: dt.datetime

    @property
    def path(self) -> str:
        return f"documents/{self.kind}/{self.version}/{self.lang}.{self.ext}"


@dataclass(frozen=True)
class TrustListRecord:
    """One issue of the trust list of qualifying certificate types, stored with the signed
    bytes as published; none is ever removed or re-signed."""

    seq: int
    issued_at: dt.datetime
    next_update: dt.datetime
    sha256: str
    size: int


@dataclass(frozen=True)
class NoticeRecord:
    """A published notice; a withdrawn one keeps its record, marked with when."""

    id: int
    kind: str
    title: Mapping[str, str]  # by language (zh-Hant, en)
    body: Mapping[str, str]
    starts: dt.datetime
    ends: dt.datetime | None
    published_at: dt.datetime
    withdrawn_at: dt.datetime | None = None


# The port beside the store: pre-signed OCSP answers and a commit probe. The composition
# root builds it next to the store (SQLite: sqlite_presigned.py); a backend without one still
# serves, each process pre-signing for itself and polling the change log.


@dataclass(frozen=True)
class PresignedResponse:
    """A pre-signed OCSP response as stored: what it answers (status, reason, revocation
    time), which key signed it, so that a reader can tell a row that no longer matches, and
    when it is due for signing again. `signed` is only what was signed: the BasicOCSPResponse
    content without `certs` (tbsResponseData, signatureAlgorithm, signature); the responder
    certificate is joined in when serving."""

    issuer_id: int
    serial: int
    hash_name: str  # hashlib name of the CertID hash: sha1, sha256, ...
    status: int
    reason: int | None
    revoked_at: dt.datetime | None
    responder_key_hash: bytes
    this_update: dt.datetime
    next_update: dt.datetime
    refresh_at: dt.datetime
    signed: bytes


@dataclass(frozen=True)
class DueAnswer:
    """A certificate whose pre-signed answer (under CertID hash `hash_name`) is due or
    missing, with the certificate's current state as the store holds it."""

    issuer_id: int
    serial: int
    hash_name: str
    status: int
    reason: int | None
    revoked_at: dt.datetime | None


class PresignedResponses(Protocol):
    """Pre-signed OCSP responses shared by every process using the store."""

    async def get(self, issuer_id: int, serial: int, hash_name: str) -> PresignedResponse | None: ...

    async def put_many(self, rows: Sequence[PresignedResponse]) -> int:
        """Save the rows whose certificate still has the state the row answers; a row about a
        certificate that changed meanwhile (or is not in the store) is left out, so that a
        stale answer never replaces a newer one. Returns how many were saved."""

    async def due(self, now: dt.datetime, issuers: Sequence[int], hashes: Sequence[str],
                  limit: int) -> list[DueAnswer]:
        """Answers whose refresh time has come, earliest first (an index walk)."""

    async def missing(self, issuer_id: int, hash_name: str, after_serial: int, limit: int) -> list[DueAnswer]:
        """Certificates of the issuer after `after_serial`, in serial order, that have no
        answer under `hash_name`."""

    async def mark_stale(self, issuer_id: int, key_hash: bytes) -> int:
        """Make due every row of the issuer that another key signed or whose certificate
        changed since (changes made while no responder followed the change log)."""

    async def coverage(self, hashes: Sequence[str], now: dt.datetime) -> tuple[int, int, int]:
        """(answers stored, certificates × len(hashes), answers due now)."""

    async def close(self) -> None: ...


class ChangeProbe(Protocol):
    """A synchronous, microsecond-cheap check for commits by any connection: called on
    every OCSP request, so it must not leave the event loop."""

    def version(self) -> int: ...

    def close(self) -> None: ...


class PresignedPort(Protocol):
    """Opens the shared pre-signed table and the commit probe of one store."""

    async def open_table(self) -> PresignedResponses: ...

    def change_probe(self) -> ChangeProbe | None: ...


def serial_hex(serial: int) -> str:
    """Upper-case hex, even number of digits, as openssl prints serials."""
    text = f"{serial:X}"
    return text if len(text) % 2 == 0 else "0" + text


def serial_key(value: int) -> bytes:
    """Encode a non-negative integer so that byte order equals numeric order."""
    if value < 0:
        raise ValueError("negative serial or CRL number")
    body = value.to_bytes(max(1, (value.bit_length() + 7) // 8), "big")
    return bytes((len(body),)) + body


def from_serial_key(key: bytes) -> int:
    return int.from_bytes(key[1:], "big")


class Store(abc.ABC):
    """Async persistence for issuers, certificates, CRLs and the change log.

    Every mutating method is one transaction: it either commits whole or not at all.
    """

    @abc.abstractmethod
    async def open(self) -> None: ...

    @abc.abstractmethod
    async def close(self) -> None: ...

    async def __aenter__(self) -> "Store":
        await self.open()
        return self

    async def __aexit__(self, *exc) -> None:
        await self.close()

    # Issuers
    @abc.abstractmethod
    async def put_issuer(self, name: str, cert_der: bytes, subject_der: bytes, key_id: bytes) -> Issuer:
        """Insert or update the CA certificate known under `name`."""

    @abc.abstractmethod
    async def issuers(self) -> list[Issuer]: ...

    @abc.abstractmethod
    async def retire_issuer(self, issuer_id: int, *, at: dt.datetime, keep_published: bool) -> Issuer:
        """Take a CA out of service (an event records it); Conflict if it already is."""

    @abc.abstractmethod
    async def raise_crl_number_floor(self, issuer_id: int, floor: int, *, at: dt.datetime) -> None:
        """Number every CRL of the issuer, in its scopes now and in any made later, above
        `floor` (a CA migrated from other software continues its numbering)."""

    # Certificates
    @abc.abstractmethod
    async def add_certificates(self, certs: Sequence[NewCert], *, at: dt.datetime) -> int:
        """Add all or none; Conflict names the first duplicate."""

    async def add_certificates_stream(self, chunks: "AsyncIterable[Sequence[NewCert]]", *, at: dt.datetime,
                                      dry_run: bool = False) -> int:
        """Add every chunk, all or none (bulk imports); with `dry_run`, check everything a
        real run would (duplicates included) and keep nothing. Stores may overlap producing
        and writing; this default collects the chunks first."""
        certs: list[NewCert] = []
        async for chunk in chunks:
            certs.extend(chunk)
        if dry_run:
            for c in certs:
                if await self.certificate(c.issuer_id, c.serial) is not None:
                    raise Conflict(f"certificate {serial_hex(c.serial)} is already in the repository; nothing was added",
                                   serial=c.serial)
            return len(certs)
        return await self.add_certificates(certs, at=at) if certs else 0

    @abc.abstractmethod
    async def certificate(self, issuer_id: int, serial: int) -> CertRecord | None: ...

    @abc.abstractmethod
    async def certificates(self, issuer_id: int, *, after_serial: int = -1, limit: int = 1000) -> list[CertRecord]:
        """Page through an issuer's certificates in serial order."""

    @abc.abstractmethod
    async def list_certificates(
        self,
        *,
        issuer_id: int | None = None,
        status: Status | None = None,
        expiring_before: dt.datetime | None = None,
        after: tuple[int, int] | None = None,
        limit: int = 1000,
    ) -> list[CertRecord]:
        """One page of certificates in (issuer id, serial) order, filtered; `after` is the
        (issuer id, serial) of the last one of the previous page."""

    @abc.abstractmethod
    async def last_status_event(self, cert: CertRecord) -> Event | None:
        """The newest revoke, hold or release event of this certificate (None when its
        status came from an import or a recovery)."""

    @abc.abstractmethod
    async def change_status(self, change: StatusChange) -> CertRecord:
        """Apply revoke / hold / release under `transition()`; NotFound, Conflict."""

    # The name index of subscriber certificates (LDAP search by cn and mail)
    @abc.abstractmethod
    async def certificates_by_id(self, *, after_id: int = 0, limit: int = 1000) -> list[CertRecord]:
        """One page of certificates in id (insertion) order, after certificate id `after_id`."""

    @abc.abstractmethod
    async def name_index_position(self) -> tuple[int, int]:
        """(the highest certificate id the name index has read, the highest certificate id)."""

    @abc.abstractmethod
    async def add_cert_names(self, names: Sequence[tuple[str, str, int]], *, upto: int) -> None:
        """Add (attr, normalised value, certificate id) rows and record that every
        certificate up to id `upto` has been read; the recorded position never goes back."""

    @abc.abstractmethod
    async def certificates_named(self, issuer_id: int, attr: str, value: str, *, after_serial: int = -1,
                                 limit: int = 1000) -> list[CertRecord]:
        """One page, in serial order, of the issuer's certificates indexed under (attr, value)."""

    # CRLs
    @abc.abstractmethod
    async def ensure_scope(self, issuer_id: int, kind: ScopeKind, dp_url: str, name: str) -> Scope: ...

    @abc.abstractmethod
    async def scopes(self) -> list[Scope]: ...

    @abc.abstractmethod
    async def dp_urls(self, issuer_id: int) -> list[str]:
        """Distinct CRL distribution point URLs of the issuer's end-entity certificates."""

    @abc.abstractmethod
    async def snapshot_entries(self, scope: Scope, *, expired_before: dt.datetime | None = None) -> EntrySnapshot: ...

    @abc.abstractmethod
    async def reserve_crl_number(self, scope: Scope) -> int:
        """Commit and return the next CRL number of the scope: never handed out twice."""

    @abc.abstractmethod
    async def record_crl(
        self,
        scope: Scope,
        number: int,
        this_update: dt.datetime,
        next_update: dt.datetime,
        der: bytes,
        *,
        entries: int,
        covered_event: int,
        issued_at: dt.datetime,
        source: str = "signed",
    ) -> CrlRecord:
        """Archive a CRL. Conflict when `number` does not exceed every number of the scope
        issued so far (handed-in CRLs) or is already taken."""

    @abc.abstractmethod
    async def current_crls(self) -> list[CrlRecord]:
        """The newest CRL of every scope."""

    @abc.abstractmethod
    async def crl_der(self, crl_id: int) -> bytes: ...

    @abc.abstractmethod
    async def crl_archive(self, scope_name: str) -> list[CrlRecord]:
        """Every archived CRL of a scope, oldest first; NotFound for an unknown scope."""

    @abc.abstractmethod
    async def crl_by_number(self, scope_name: str, number: int) -> CrlRecord | None: ...

    @abc.abstractmethod
    async def prune_crls(self, before: dt.datetime) -> int:
        """Delete archived CRLs whose thisUpdate is before `before`, never a current one."""

    # Disclosure documents
    @abc.abstractmethod
    async def add_document(self, kind: str, version: str, lang: str, *, effective: dt.date, oid: str | None,
                           media_type: str, ext: str, data: bytes, at: dt.datetime) -> DocumentRecord:
        """Publish one version, with an event. Conflict (and nothing stored) when the version
        already exists for that kind and language, or its effective date is before the
        newest version's."""

    @abc.abstractmethod
    async def documents(self) -> list[DocumentRecord]:
        """Every publication, in the order published."""

    @abc.abstractmethod
    async def document_bytes(self, kind: str, version: str, lang: str) -> tuple[DocumentRecord, bytes] | None: ...

    # The trust list of qualifying certificate types
    @abc.abstractmethod
    async def trustlist_state(self) -> tuple[int, tuple[TrustEntry, ...]]:
        """The sequence number of the newest list (0: none yet) and every entry ever listed,
        with its status history, as of that list."""

    @abc.abstractmethod
    async def add_trustlist(self, *, prev_seq: int, changed: TrustEntry | None, issued_at: dt.datetime,
                            next_update: dt.datetime, xml: bytes) -> TrustListRecord:
        """Store list `prev_seq + 1` and the entry it changes (new, or with statuses added),
        with an event, in one transaction. Conflict (and nothing stored) when another list
        was stored after `prev_seq`."""

    @abc.abstractmethod
    async def trustlists(self) -> list[TrustListRecord]:
        """Every list issued, oldest first."""

    @abc.abstractmethod
    async def trustlist_bytes(self, seq: int | None = None) -> tuple[TrustListRecord, bytes] | None:
        """List `seq` (None: the newest) and its signed bytes."""
    # Notices
    @abc.abstractmethod
    async def add_notice(self, notice: NewNotice, *, at: dt.datetime) -> NoticeRecord:
        """Publish a notice, with an event."""

    @abc.abstractmethod
    async def withdraw_notice(self, notice_id: int, *, at: dt.datetime) -> NoticeRecord:
        """Mark a notice withdrawn, with an event; NotFound for an unknown id, Conflict
        when it was withdrawn already."""

    @abc.abstractmethod
    async def notices(self, *, withdrawn: bool = False, limit: int | None = None) -> list[NoticeRecord]:
        """Notices, newest first: those shown, or with `withdrawn` every one."""

    # Change log
    @abc.abstractmethod
    async def change_token(self) -> int:
        """A number that grows whenever anything changes, in any process."""

    async def wait_for_change(self, timeout: float) -> None:
        """Return when a change may have been committed (by any process or node), or after
        `timeout` seconds: what the background loops wait on between rounds. This default
        only waits; a store that hears of commits (PostgreSQL's notifications) returns early."""
        await asyncio.sleep(timeout)

    @abc.abstractmethod
    async def last_event(self, issuer_id: int, kinds: Sequence[str]) -> Event | None: ...

    @abc.abstractmethod
    async def events_since(self, event_id: int, *, limit: int = 1000) -> list[Event]: ...

    async def check(self) -> list[str]:
        """The backend's own consistency check; [] when sound (`pkirepo check`)."""
        return []

    @abc.abstractmethod
    async def log_event(self, kind: str, *, at: dt.datetime, issuer_id: int | None = None, detail: str | None = None) -> int: ...

    async def certificate_events(self, cert: CertRecord, *, limit: int = 100) -> list[Event]:
        """The newest `limit` status events (revoke, hold, release) of one certificate,
        oldest first: its history as the change log tells it."""
        raise NotImplementedError

    # Idempotency keys of the admin API. Not abstract: a backend without them serves, and
    # the admin API refuses to start on it.

    async def claim_idempotency_key(self, key: str, actor: str, request_hash: str, *, at: dt.datetime,
                                    expired_before: dt.datetime,
                                    abandoned_before: dt.datetime | None = None) -> "IdempotentAnswer | None":
        """In one transaction: forget the keys created before `expired_before`, then either
        record (key, actor) as in progress and return None (the caller carries the request
        out), or return what is recorded for it (in progress, or the first answer).
        A claim of the same request still in progress but made before `abandoned_before`
        was left by a process that died carrying it out: it is taken over (None)."""
        raise NotImplementedError

    async def complete_idempotency_key(self, key: str, actor: str, status: int, body: bytes) -> None:
        """Record the answer of a claimed request."""
        raise NotImplementedError

    async def release_idempotency_key(self, key: str, actor: str) -> None:
        """Forget a claimed request that got no final answer (a fault of ours, a store that
        was busy): a retry carries it out afresh."""
        raise NotImplementedError

    # Operations: maintenance windows, the heartbeat and the availability ledger. Not
    # abstract: a backend without them serves, and the commands that need them say so.

    async def maintenance_windows(self, *, since: dt.datetime | None = None) -> "list[Window]":
        """Every window (cancelled ones too) that ends after `since` or is still open, by start."""
        raise NotImplementedError

    async def schedule_maintenance(self, start: dt.datetime, end: dt.datetime, reason: str, *,
                                   budget: dt.timedelta, at: dt.datetime) -> "Window":
        """Record a scheduled window after `maintenance.check_schedule`, in one transaction
        with the windows it was checked against; Conflict when it does not fit."""
        raise NotImplementedError

    async def cancel_maintenance(self, window_id: int, *, at: dt.datetime) -> "Window":
        """Cancel a window that has not started; NotFound, Conflict."""
        raise NotImplementedError

    async def start_emergency_maintenance(self, reason: str, *, at: dt.datetime) -> "Window":
        """Open emergency maintenance now; Conflict when a window is already under way."""
        raise NotImplementedError

    async def end_maintenance(self, reason: str | None, *, at: dt.datetime) -> "Window":
        """End the window under way now (emergency, or a scheduled one cut short); NotFound."""
        raise NotImplementedError

    async def start_heartbeat(self, *, at: dt.datetime, alive_within: dt.timedelta) -> "tuple[int, Downtime | None]":
        """Register a serving process. When no other process beat within `alive_within`, the
        time since the last sign of life of any earlier one is recorded as downtime (a
        crash: from its last heartbeat; a clean stop: from its stop) and returned."""
        raise NotImplementedError

    async def beat(self, heartbeat_id: int, *, at: dt.datetime, stopped: bool = False) -> None:
        raise NotImplementedError

    async def open_downtime(self, cause: str, *, at: dt.datetime) -> int:
        raise NotImplementedError

    async def close_downtime(self, downtime_id: int, *, at: dt.datetime) -> None:
        raise NotImplementedError

    async def downtime(self, *, since: dt.datetime | None = None) -> "list[Downtime]":
        """Unplanned downtime intervals that end after `since` (or are open), by start."""
        raise NotImplementedError

    async def first_start(self) -> dt.datetime | None:
        """When a server first ran on this store (the start of the availability ledger)."""
        raise NotImplementedError

    async def backup_to(self, path, *, progress=None) -> int:
        """Copy the whole store to `path` while it serves (a consistent snapshot); returns
        the pages copied. `progress(done, total)` is called as it goes."""
        raise NotImplementedError

    async def schema_version(self) -> tuple[int, int]:
        """(the store's schema version, the version this code knows)."""
        raise NotImplementedError

    async def archived_crls(self, *, after_id: int = 0, limit: int = 100) -> "list[tuple[CrlRecord, bytes]]":
        """A page of archived CRLs with their DER, in id (issuance) order."""
        raise NotImplementedError

    # The audit trail (publisher/audit.py): appended only, chained, pruned from the oldest
    # end past the retention.

    @abc.abstractmethod
    async def append_audit(self, entry: AuditEntry) -> AuditRecord:
        """Read the head and insert the record that follows it, in one transaction under the
        store's write lock, so that appenders in any process (or on any node) never fork
        the chain."""

    @abc.abstractmethod
    async def audit_records(self, *, after_seq: int = 0, since: dt.datetime | None = None,
                            until: dt.datetime | None = None, limit: int = 1000) -> list[AuditRecord]:
        """One page of records after `after_seq`, in sequence order; with `since` / `until`,
        only those at or after / before those times."""

    @abc.abstractmethod
    async def audit_bounds(self) -> tuple[int, int, tuple[int, str] | None]:
        """(oldest kept sequence number, newest; 0, 0 when empty) and what the oldest kept
        record follows after pruning: (sequence number, hash), or None when nothing was pruned."""

    @abc.abstractmethod
    async def add_audit_checkpoint(self, checkpoint: AuditCheckpoint) -> None: ...

    @abc.abstractmethod
    async def audit_checkpoints(self, *, limit: int | None = None) -> list[AuditCheckpoint]:
        """Stored checkpoints, oldest first (with `limit`: the newest `limit` of them)."""

    @abc.abstractmethod
    async def prune_audit(self, before: dt.datetime) -> int:
        """Delete the oldest records up to the newest stored checkpoint that is older than
        `before` and record what the next one follows, in one transaction; returns how many.
        Pruning only at a checkpoint keeps the rest verifiable from a signed anchor."""
