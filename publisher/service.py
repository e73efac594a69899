"""The service layer: every operation an operator or the scheduler performs, over the
injected store, signers and clock. The CLI calls it today; the admin API will call the
same methods."""
from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
import hashlib
import logging
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Callable, Iterable, Mapping
from urllib.parse import urlsplit

from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509.oid import ExtensionOID

from . import certs as certmod
from . import crl as crlmod
from . import documents as docmod
from . import faults, witness
from . import maintenance as maintmod
from . import notices as noticemod
from . import audit as auditmod
from .actor import SYSTEM, Actor, AuditSink, NoAudit
from .audit_trail import audited, record_failure
from .clock import Clock
from .config import NAME_RE, CaSettings, RepositorySettings
from .crl import Reason, ScopeKind
from .errors import ConfigError, Conflict, MalformedInput, NotFound, RepoError, StoreBehind, VerificationError
from .files import atomic_write, remove_stale_temporaries
from .schedule import STATUS_EVENTS, Due, due, next_update_for
from .signer import Signer, load_key_signer
from .store import (Action, CertRecord, CrlRecord, DocumentRecord, Issuer, NewCert, Scope, Status, StatusChange, Store,
                    serial_hex, transition)
from .store import Event, NoticeRecord
from .witness import Watermark

log = logging.getLogger("pkirepo")

#: Who issues the CRLs that fall due while the server runs.
SCHEDULE = Actor("system", "schedule")

RECOVERY = ("run `pkirepo recover`, which brings every revocation and CRL number back from the "
            "published CRLs, or restore a newer backup of the store")


def load_signers(settings: RepositorySettings) -> dict[str, Signer]:
    """The CRL signing key of every CA that has one in config."""
    signers: dict[str, Signer] = {}
    for i, ca in enumerate(settings.cas):
        if ca.key is not None:
            signers[ca.name] = load_key_signer(
                ca.key,
                passphrase_file=ca.key_passphrase_file,
                passphrase_env=ca.key_passphrase_env,
                what=f"{settings.source}: ca[{i}].key",
            )
    return signers


def partition_name(ca: CaSettings, url: str) -> str:
    """The publication name of a partition: a configured override, else the URL's file name
    without `.crl` (http://crl1.eCert.gov.hk/crl/eCertCA2-17CRL2.crl -> eCertCA2-17CRL2)."""
    if url in ca.partition_names:
        return ca.partition_names[url]
    name = PurePosixPath(urlsplit(url).path).name
    if name.lower().endswith(".crl"):
        name = name[:-4]
    if not NAME_RE.match(name):
        raise ConfigError(
            f"CRL distribution point {url!r} of CA {ca.name} gives no usable CRL name; "
            f"add it under [ca.partition_names]")
    return name


@dataclass(frozen=True)
class IdentifiedCrl:
    """A CRL signed by a configured CA, and the scope it belongs to."""

    crl: x509.CertificateRevocationList
    der: bytes
    ca: CaSettings
    issuer: Issuer
    scope: Scope
    number: int


@dataclass(frozen=True)
class Listing:
    """Whether the current CRL of one scope lists a certificate."""

    record: CrlRecord
    listed: bool  # False: the certificate belongs in this scope, but its next CRL is not out yet


@dataclass(frozen=True)
class CertificateInfo:
    """What the repository knows and publishes about one certificate (`pkirepo cert show`)."""

    issuer: str
    cert: CertRecord
    listings: tuple[Listing, ...]  # the current CRLs of the scopes that cover it


@dataclass(frozen=True)
class IssuedCrl:
    record: CrlRecord
    der: bytes
    why: str


@dataclass(frozen=True)
class PublicationRound:
    """What one round of the publication loop did: the CRLs issued, the scopes that failed
    (by name, with the error), and the scopes skipped because their CA is not configured
    here (by name, with why)."""

    issued: list[IssuedCrl]
    failed: dict[str, Exception]
    unconfigured: dict[str, str]


class UnconfiguredIssuer(NotFound):
    """The store holds a CA (added by a process with another configuration) that this
    process's configuration does not have."""


def describe_issuer(issuer: Issuer) -> str:
    """`name (subject)`, for messages."""
    try:
        subject = x509.load_der_x509_certificate(issuer.cert_der).subject.rfc4514_string()
    except ValueError:
        subject = "subject unreadable"
    return f"{issuer.name} ({subject})"


class Repository:
    """The repository of all configured CAs."""

    def __init__(self, settings: RepositorySettings, *, store: Store, signers: Mapping[str, Signer], clock: Clock,
                 audit: AuditSink | None = None) -> None:
        self.settings = settings
        self.store = store
        self.signers = dict(signers)
        self.clock = clock
        # Every change, refusal and CRL issued is put on record here (CPS 4.5).
        self.audit: AuditSink = audit if audit is not None else NoAudit()
        self._issuers: dict[str, Issuer] = {}
        # Every issuer in the store, configured or not, to name the ones this config lacks.
        self._stored_issuers: dict[int, Issuer] = {}
        self._certs: dict[str, x509.Certificate] = {}
        self._issue_lock = asyncio.Lock()
        self.watermark = Watermark.beside(settings.store_path)
        # The lowest number each scope may still publish above (from the witnesses); only
        # ever raised, so a stale value errs on the safe side.
        self._floors: dict[str, int] = {}
        # path -> (mtime_ns, size, sha256) of the published files this process has seen, so
        # that matching the directory to the store (after every change) does not read and
        # hash unchanged files again.
        self._file_state: dict[Path, tuple[int, int, str]] = {}
        self._checked = False

    # The audit trail

    async def _audited(self, actor: Actor, action: str, obj: str, work, *,
                       detail: Mapping[str, object] | None = None, done=None):
        return await audited(self.audit, actor, action, obj, work, detail=detail, done=done)

    async def _record_failure(self, actor: Actor, action: str, obj: str, result: str, detail) -> None:
        await record_failure(self.audit, actor, action, obj, result, detail)

    # Issuers

    async def sync_issuers(self) -> None:
        """Load every configured CA certificate into the store and make its fixed scopes.
        Every CA certificate, key and CRL name is checked before the first write: a config
        that is wrong anywhere changes nothing."""
        loaded: list[tuple[CaSettings, x509.Certificate]] = []
        for i, ca in enumerate(self.settings.cas):
            where = f"{self.settings.source}: ca[{i}].certificate"
            try:
                certs = certmod.split_certificates(ca.certificate.read_bytes(), str(ca.certificate))
            except MalformedInput as e:
                raise ConfigError(f"{where}: {e.message}") from None
            except OSError as e:
                raise ConfigError(f"{where}: cannot read {ca.certificate}: {e.strerror}") from None
            cert = certs[0]
            if not certmod.is_ca(cert):
                raise ConfigError(f"{where}: {ca.certificate} is not a CA certificate (basicConstraints cA)")
            signer = self.signers.get(ca.name)
            if signer is not None and signer.public_key().public_numbers() != cert.public_key().public_numbers():
                raise ConfigError(f"{self.settings.source}: ca[{i}].key does not belong to {ca.certificate}")
            loaded.append((ca, cert))
        stored = {i.name: i for i in await self.store.issuers()}
        wanted = []
        for ca, _ in loaded:
            urls = await self.store.dp_urls(stored[ca.name].id) if ca.name in stored else []
            wanted += self._wanted_scopes(ca, urls)
        await self._check_scopes(wanted)
        for ca, cert in loaded:
            issuer = await self.store.put_issuer(
                ca.name, cert.public_bytes(Encoding.DER), certmod.subject_der(cert), certmod.key_identifier(cert))
            self._issuers[ca.name] = issuer
            self._certs[ca.name] = cert
        await self._register_intermediates()
        for ca in self.settings.cas:
            await self.ensure_scopes(ca)

    @staticmethod
    def _wanted_scopes(ca: CaSettings, urls: Iterable[str]) -> list[tuple[str, ScopeKind, str, str]]:
        """(CA name, kind, distribution point, CRL name) of every scope `ca` publishes, given
        the partition URLs its certificates name."""
        out = []
        if ca.full_crl:
            out.append((ca.name, ScopeKind.FULL, "", ca.full_crl))
        if ca.arl:
            out.append((ca.name, ScopeKind.ARL, "", ca.arl))
        if ca.partitions:
            out += [(ca.name, ScopeKind.PARTITION, url, partition_name(ca, url)) for url in sorted(set(urls))]
        return out

    async def check_new_scopes(self, ca: CaSettings, urls: Iterable[str]) -> None:
        """Refuse, before anything is written, certificates whose CRL distribution points
        would give a partition a name another CRL already has."""
        await self._check_scopes(self._wanted_scopes(ca, urls))

    async def _check_scopes(self, wanted: list[tuple[str, ScopeKind, str, str]]) -> None:
        names = {i.id: i.name for i in await self.store.issuers()}
        owner_of: dict[str, tuple[str, ScopeKind, str]] = {}
        name_of: dict[tuple[str, ScopeKind, str], str] = {}
        for s in await self.store.scopes():
            key = (names.get(s.issuer_id, "?"), s.kind, s.dp_url)
            owner_of[s.name], name_of[key] = key, s.name
        for ca_name, kind, url, name in wanted:
            key = (ca_name, kind, url)
            if key in name_of:
                if name_of[key] != name:
                    # Renaming a published CRL would break every URL that names it.
                    raise Conflict(f"{self.settings.source}: {_describe_scope(key)} is already published as "
                                   f"{name_of[key]!r}, not {name!r}; keep its name in the config")
                continue
            other = owner_of.get(name)
            if other is not None and other != key:
                hint = (f"name it under [ca.partition_names] of {ca_name}" if kind is ScopeKind.PARTITION
                        else f"choose another {'full_crl' if kind is ScopeKind.FULL else 'arl'} name for {ca_name}")
                raise Conflict(f"{self.settings.source}: CRL name {name!r} of {_describe_scope(key)} is already "
                               f"used by {_describe_scope(other)}; {hint}. Nothing was changed")
            owner_of[name], name_of[key] = key, name

    async def _register_intermediates(self) -> None:
        """A configured CA issued by another configured CA is also one of that CA's
        certificates: it can be revoked (and then appears on the ARL) and OCSP answers for
        it like any other."""
        new = []
        for ca in self.settings.cas:
            cert = self._certs[ca.name]
            if cert.issuer == cert.subject:
                continue
            try:
                _, parent = self._find_issuer_of(cert, str(ca.certificate))
            except (NotFound, VerificationError):
                continue  # issued by a CA we do not serve
            if await self.store.certificate(parent.id, cert.serial_number) is None:
                new.append(_new_cert(cert, parent.id))
        if new:
            await self.store.add_certificates(new, at=self.clock.now())

    async def ensure_scopes(self, ca: CaSettings) -> list[Scope]:
        issuer = self._issuers[ca.name]
        scopes = []
        if ca.full_crl:
            scopes.append(await self.store.ensure_scope(issuer.id, ScopeKind.FULL, "", ca.full_crl))
        if ca.arl:
            scopes.append(await self.store.ensure_scope(issuer.id, ScopeKind.ARL, "", ca.arl))
        if ca.partitions:
            for url in await self.store.dp_urls(issuer.id):
                scopes.append(await self.store.ensure_scope(issuer.id, ScopeKind.PARTITION, url, partition_name(ca, url)))
        return scopes

    def issuer(self, name: str) -> Issuer:
        try:
            return self._issuers[name]
        except KeyError:
            known = ", ".join(self._issuers) or "none"
            raise NotFound(f"unknown issuer {name!r} (configured: {known})") from None

    def issuer_by_id(self, issuer_id: int) -> tuple[CaSettings, Issuer]:
        for ca in self.settings.cas:
            if self._issuers[ca.name].id == issuer_id:
                return ca, self._issuers[ca.name]
        raise UnconfiguredIssuer(self._unconfigured_message(issuer_id))

    def _unconfigured_message(self, issuer_id: int) -> str:
        # Store ids mean nothing to an operator: name the CA as the store knows it.
        known = self._stored_issuers.get(issuer_id)
        what = "a CA" if known is None else f"CA {describe_issuer(known)}"
        return (f"the store holds {what} that is not configured in {self.settings.source}: "
                f"add it under [[ca]] and restart, or use the configuration that added it")

    async def unconfigured_scopes(self) -> list[tuple[Scope, str]]:
        """Scopes of the store whose CA this process's configuration does not have (another
        process, started with a newer config, added them), each with why it is skipped."""
        configured = {i.id for i in self._issuers.values()}
        scopes = [s for s in await self.store.scopes() if s.issuer_id not in configured]
        if scopes and any(s.issuer_id not in self._stored_issuers for s in scopes):
            self._stored_issuers = {i.id: i for i in await self.store.issuers()}
        return [(s, self._unconfigured_message(s.issuer_id)) for s in scopes]

    async def issuer_name_by_id(self, issuer_id: int) -> str:
        """The CA's name, configured or, for a CA added by a process with another config, as
        the store knows it."""
        for name, issuer in self._issuers.items():
            if issuer.id == issuer_id:
                return name
        if issuer_id not in self._stored_issuers:
            self._stored_issuers = {i.id: i for i in await self.store.issuers()}
        known = self._stored_issuers.get(issuer_id)
        if known is None:
            raise UnconfiguredIssuer(self._unconfigured_message(issuer_id))
        return known.name

    def issuer_certificate(self, name: str) -> x509.Certificate:
        self.issuer(name)
        return self._certs[name]

    def chain(self, name: str) -> list[x509.Certificate]:
        """The CA certificate and its issuers up to a root, as far as we know them."""
        out = [self.issuer_certificate(name)]
        while out[-1].issuer != out[-1].subject and len(out) < 10:
            parent = next((c for c in self._certs.values() if c.subject == out[-1].issuer), None)
            if parent is None:
                break
            out.append(parent)
        return out

    @property
    def ca_names(self) -> list[str]:
        return [ca.name for ca in self.settings.cas]

    # Reading what was published

    @property
    def archive_retention(self) -> dt.timedelta:
        return self.settings.crl.archive_retention

    async def archive(self, name: str) -> list[CrlRecord]:
        """Every archived CRL of the scope `name`, oldest first (NotFound for no such scope)."""
        return await self.store.crl_archive(name)

    async def archived_crl(self, name: str, number: int) -> tuple[CrlRecord, bytes]:
        rec = await self.store.crl_by_number(name, number)
        if rec is None:
            await self.store.crl_archive(name)  # NotFound for an unknown name
            raise NotFound(f"no CRL number {number} of {name} in the archive")
        return rec, await self.store.crl_der(rec.id)

    async def certificate_der(self, issuer_name: str, serial: int) -> bytes:
        issuer = self.issuer(issuer_name)
        rec = await self.store.certificate(issuer.id, serial)
        if rec is None:
            raise NotFound(f"no certificate {serial_hex(serial)} from {issuer_name}")
        if rec.der is None:
            raise NotFound(f"certificate {rec.serial_hex} is known (imported) but its file was never provided")
        return rec.der

    async def certificate_info(self, issuer_name: str, serial: int) -> CertificateInfo:
        """The certificate's record and, for every scope that covers it (the full CRL, the
        partition of its distribution point, the ARL for a CA certificate), that scope's
        current CRL and whether it already lists the certificate."""
        issuer = self.issuer(issuer_name)
        rec = await self.store.certificate(issuer.id, serial)
        if rec is None:
            raise NotFound(f"no certificate {serial_hex(serial)} from {issuer_name}")
        listings = []
        event = None if rec.status is Status.GOOD else await self.store.last_status_event(rec)
        drop = self.settings.crl.drop_expired_after
        for crl in await self.store.current_crls():
            scope = crl.scope
            if scope.issuer_id != issuer.id or not _covers(scope, rec):
                continue
            if rec.status is Status.GOOD:
                listed = False
            elif drop is not None and rec.not_after is not None and rec.not_after < crl.this_update - drop:
                listed = False
            elif crl.source != "signed":
                # A CRL signed elsewhere records no change-log position: read it (ARLs are small).
                listed = await self._crl_lists(crl, rec.serial)
            else:
                # Its status came from an import or a recovery when no change event names it;
                # every CRL issued since then reflects it.
                listed = event is None or event.id <= crl.covered_event
            listings.append(Listing(crl, listed))
        return CertificateInfo(issuer_name, rec, tuple(listings))

    async def _crl_lists(self, crl: CrlRecord, serial: int) -> bool:
        c = x509.load_der_x509_crl(await self.store.crl_der(crl.id))
        return c.get_revoked_certificate_by_serial_number(serial) is not None

    def status_published_by(self) -> dt.datetime:
        """When a status change made now is in a CRL, if a server runs: its supplementary
        CRL follows after `supplementary_delay` (the publication loop ticks every second)."""
        return self.clock.now() + self.settings.crl.supplementary_delay

    async def retire(self, name: str, *, keep_published: bool = False, actor: Actor = SYSTEM) -> Issuer:
        """Take a CA out of service: its CRLs are no longer issued (so it needs no key and
        never holds up the others); its archive stays, and its last CRLs stay published
        until their nextUpdate, or for good with `keep_published`."""
        return await self._audited(actor, "ca-retire", f"ca {name}", self._retire(name, keep_published=keep_published),
                                   detail={"keep_published": keep_published})

    async def _retire(self, name: str, *, keep_published: bool = False) -> Issuer:
        issuer = self.issuer(name)
        retired = await self.store.retire_issuer(issuer.id, at=self.clock.now(), keep_published=keep_published)
        self._issuers[name] = retired
        return retired

    async def refresh_issuers(self) -> None:
        """Take in retirements recorded by other processes."""
        by_id = {i.id: i for i in await self.store.issuers()}
        for name, old in list(self._issuers.items()):
            self._issuers[name] = by_id.get(old.id, old)

    def withdrawn_at(self, issuer_id: int, rec: CrlRecord) -> dt.datetime | None:
        """When the current CRL `rec` stops being published: its nextUpdate when its CA is
        retired (unless kept published), otherwise never (None)."""
        issuer = next((i for i in self._issuers.values() if i.id == issuer_id), None)
        if issuer is None or issuer.retired_at is None or issuer.keep_published:
            return None  # a CA this config lacks: what was published stays published
        return rec.next_update

    def _find_issuer_of(self, cert: x509.Certificate, source: str) -> tuple[CaSettings, Issuer]:
        candidates = [ca for ca in self.settings.cas if self._certs[ca.name].subject == cert.issuer]
        if not candidates:
            raise NotFound(f"{source}: issuer {cert.issuer.rfc4514_string()} is not a configured CA")
        last_error = None
        for ca in candidates:  # a renewed CA may share the subject: the signature decides
            try:
                certmod.verify_issued_by(cert, self._certs[ca.name], source)
                return ca, self._issuers[ca.name]
            except VerificationError as e:
                last_error = e
        raise last_error

    # Certificates

    async def add_certificates(self, items: Iterable[tuple[bytes, str]], *, actor: Actor = SYSTEM) -> int:
        """Add certificates from (file content, file name) pairs, all or none. A configured
        CA certificate in a chain file is skipped, self-signed roots too."""
        items = list(items)
        sources = [source for _, source in items]
        added: list[NewCert] = []

        def done(count: int):
            names = {i.id: n for n, i in self._issuers.items()}
            serials = [f"{names.get(c.issuer_id, c.issuer_id)} {serial_hex(c.serial)}" for c in added]
            obj = (f"certificate {serials[0]}" if len(serials) == 1 else f"certificates ({len(serials)})")
            return obj, {"certificates": serials[:AUDIT_LISTED], "more": max(0, len(serials) - AUDIT_LISTED)}

        return await self._audited(actor, "cert-add", "certificates", self._add_certificates(items, added),
                                   detail={"files": sources[:AUDIT_LISTED]}, done=done)

    async def _add_certificates(self, items: list[tuple[bytes, str]], added: list[NewCert]) -> int:
        new: list[NewCert] = []
        seen: set[tuple[int, int]] = set()
        sources: dict[int, str] = {}
        touched: set[str] = set()
        configured = {c.public_bytes(Encoding.DER) for c in self._certs.values()}
        for data, source in items:
            for n, cert in enumerate(certmod.split_certificates(data, source)):
                where = f"{source} (certificate {n + 1})"
                der = cert.public_bytes(Encoding.DER)
                if der in configured or cert.issuer == cert.subject:
                    continue
                ca, issuer = self._find_issuer_of(cert, where)
                if cert.serial_number < 0:
                    raise MalformedInput(f"{where}: negative serial number")
                key = (issuer.id, cert.serial_number)
                if key in seen:
                    raise Conflict(f"{where}: serial {cert.serial_number:X} appears twice in the input")
                seen.add(key)
                sources[cert.serial_number] = where
                touched.add(ca.name)
                new.append(_new_cert(cert, issuer.id))
        if not new:
            raise MalformedInput("no certificate to add (only configured CA certificates or roots in the input)")
        for name in touched:
            ca = self.settings.ca(name)
            await self.check_new_scopes(ca, [c.dp_url for c in new if c.dp_url and not c.is_ca
                                             and c.issuer_id == self._issuers[name].id])
        added.extend(new)
        try:
            count = await self.store.add_certificates(new, at=self.clock.now())
        except Conflict as e:
            where = sources.get(e.detail.get("serial"))
            raise Conflict(f"{where}: {e.message}" if where else e.message) from e
        for name in touched:
            await self.ensure_scopes(self.settings.ca(name))
        return count

    async def change_status(
        self,
        issuer_name: str,
        serial: int,
        action: Action,
        *,
        reason: Reason | None = None,
        at: dt.datetime | None = None,
        invalidity: dt.datetime | None = None,
        dry_run: bool = False,
        actor: Actor = SYSTEM,
    ) -> CertRecord:
        """Revoke, hold or release. With `dry_run`, every check runs and the record is
        returned as it would become, but nothing is written (nor recorded)."""
        work = self._change_status(issuer_name, serial, action, reason=reason, at=at, invalidity=invalidity,
                                   dry_run=dry_run)
        if dry_run:
            return await work
        detail = {"reason": None if reason is None else reason.name,
                  "time": None if at is None else at.isoformat(),
                  "invalidity": None if invalidity is None else invalidity.isoformat()}
        return await self._audited(actor, action.value, f"certificate {issuer_name} {serial_hex(serial)}", work,
                                   detail={k: v for k, v in detail.items() if v is not None})

    async def _change_status(self, issuer_name: str, serial: int, action: Action, *, reason: Reason | None,
                             at: dt.datetime | None, invalidity: dt.datetime | None, dry_run: bool) -> CertRecord:
        issuer = self.issuer(issuer_name)
        now = self.clock.now()
        given = at
        at = at or now
        if at > now + dt.timedelta(minutes=5):
            raise MalformedInput(f"revocation time {at.isoformat()} is in the future")
        for what, when in (("revocation time", at), ("invalidity date", invalidity)):
            if when is not None and when < crlmod.EARLIEST_TIME:
                raise MalformedInput(f"{what} {when.isoformat()} is before 1950, which a CRL cannot express")
        if invalidity is not None and invalidity > at:
            raise MalformedInput("the invalidity date must not be after the revocation time")
        if given is not None and action is not Action.RELEASE:
            # A revocation dated before the certificate was valid would publish a history
            # that cannot have happened. Without a time the revocation is dated now, when
            # it is processed, even for a certificate whose validity starts later.
            cert = await self.store.certificate(issuer.id, serial)
            if cert is not None and cert.not_before is not None and given < cert.not_before:
                raise MalformedInput(
                    f"revocation time {given.isoformat()} is before certificate {cert.serial_hex} was valid"
                    f" (notBefore {cert.not_before.isoformat()})")
        if action is Action.HOLD:
            reason = Reason.certificateHold
        elif action is Action.REVOKE and reason in (Reason.certificateHold, Reason.removeFromCRL):
            raise MalformedInput(f"reason {reason.name} is not a revocation reason: use hold / release")
        entry = None
        if action is not Action.RELEASE:
            entry = crlmod.encode_entry(serial, at, reason, invalidity, self.settings.crl.reason_policy)
        if dry_run:
            return await self._preview_status(issuer_name, issuer, serial, action, reason, at, invalidity)
        try:
            return await self.store.change_status(
                StatusChange(issuer.id, serial, action, reason, at, invalidity, entry))
        except NotFound as e:
            raise NotFound(f"{issuer_name}: {e.message}") from e

    async def _preview_status(self, issuer_name, issuer, serial, action, reason, at, invalidity) -> CertRecord:
        cert = await self.store.certificate(issuer.id, serial)
        if cert is None:
            raise NotFound(f"{issuer_name}: no certificate with serial {serial_hex(serial)} from this issuer")
        new = transition(cert.status, action, cert.serial_hex)
        if new is Status.GOOD:
            return dataclasses.replace(cert, status=new, reason=None, revoked_at=None, invalidity_at=None)
        return dataclasses.replace(cert, status=new, reason=reason, revoked_at=at, invalidity_at=invalidity)

    # CRLs

    async def latest_by_scope(self) -> dict[int, CrlRecord]:
        return {c.scope.id: c for c in await self.store.current_crls()}

    async def due_scopes(self) -> list[tuple[Scope, Due]]:
        """What is due among the scopes of configured CAs that have a key here (scopes of CAs
        this config lacks are skipped; `unconfigured_scopes` reports them)."""
        now = self.clock.now()
        latest = await self.latest_by_scope()
        await self.refresh_issuers()
        configured = {i.id: (name, i) for name, i in self._issuers.items()}
        out = []
        for scope in await self.store.scopes():
            name, issuer = configured.get(scope.issuer_id, (None, None))
            if name is None or name not in self.signers:
                continue  # a CA this config lacks, or an offline key: CRLs are handed in
            if issuer.retired_at is not None:
                continue  # out of service: its last CRLs stand until they lapse
            change = await self.store.last_event(scope.issuer_id, STATUS_EVENTS)
            d = due(now, scope.kind, latest.get(scope.id), change, self.settings.crl)
            if d is not None:
                out.append((scope, d))
        return out

    async def issue(self, scope: Scope, why: str, *, actor: Actor = SCHEDULE) -> IssuedCrl:
        """Build, sign, archive and publish one CRL, on record as issued by `actor`."""
        kind = "arl" if scope.kind is ScopeKind.ARL else "crl"

        def done(issued: IssuedCrl):
            r = issued.record
            return f"{kind} {scope.name} #{r.number}", {
                "entries": r.entries, "this_update": r.this_update.isoformat(),
                "next_update": r.next_update.isoformat(), "sha256": r.sha256}

        return await self._audited(actor, "crl-issue", f"{kind} {scope.name}", self._issue(scope, why),
                                   detail={"why": why}, done=done)

    async def _issue(self, scope: Scope, why: str) -> IssuedCrl:
        ca, issuer = self.issuer_by_id(scope.issuer_id)
        signer = self.signers.get(ca.name)
        if signer is None:
            raise NotFound(f"CA {ca.name} has no signing key in config; hand its CRLs in with `pkirepo crl add`")
        s = self.settings.crl
        now = self.clock.now()
        expired_before = None if s.drop_expired_after is None else now - s.drop_expired_after
        snap = await self.store.snapshot_entries(scope, expired_before=expired_before)
        number = await self.store.reserve_crl_number(scope)
        faults.point("after-reserve")
        self._above_floor(scope.name, number)
        dp_url = scope.dp_url or (ca.arl_url if scope.kind is ScopeKind.ARL else None)
        params = crlmod.CrlParams(
            issuer_name_der=issuer.subject_der,
            authority_key_id=issuer.key_id,
            this_update=now,
            next_update=next_update_for(scope.kind, now, s),
            number=number,
            kind=scope.kind,
            dp_url=dp_url or None,
        )
        # Hashing and signing tens of megabytes must not hold the event loop.
        der = await asyncio.to_thread(crlmod.sign_crl, signer, params, snap.entries)
        faults.point("after-sign")
        record = await self.store.record_crl(
            scope, number, params.this_update, params.next_update, der,
            entries=snap.count, covered_event=snap.covered_event, issued_at=now)
        faults.point("after-record")
        await asyncio.to_thread(self.write_crl_file, scope.name, number, der)
        faults.point("after-file-write")
        log.info("issued %s #%d (%s): %d entries, %d bytes", scope.name, number, why, snap.count, len(der))
        return IssuedCrl(record, der, why)

    async def issue_due(self, *, force: bool = False, issuer_name: str | None = None,
                        actor: Actor = SYSTEM) -> list[IssuedCrl]:
        """Issue every CRL that is due (or, with force, every CRL we can sign); each CRL
        issued is on record as issued by `actor`, a refusal before any as refused."""
        try:
            return await self._issue_due(force=force, issuer_name=issuer_name, actor=actor)
        except RepoError as e:
            if not getattr(e, "audited", False):
                await self._record_failure(actor, "crl-issue", f"crls of {issuer_name or 'every CA'}",
                                           auditmod.refusal(e), {"force": force})
            raise

    async def _issue_due(self, *, force: bool, issuer_name: str | None, actor: Actor) -> list[IssuedCrl]:
        await self._ensure_checked()
        async with self._issue_lock:
            if force:
                await self.refresh_issuers()
                todo = [(s, Due("manual")) for s in await self.store.scopes()
                        if _signable(*self.issuer_by_id(s.issuer_id), self.signers)]
            else:
                todo = await self.due_scopes()
            if issuer_name is not None:
                issuer = self.issuer(issuer_name)
                todo = [(s, d) for s, d in todo if s.issuer_id == issuer.id]
            if todo:
                # Clear what a writer that crashed mid-write (this process earlier, the CLI,
                # another server) left behind before adding files of our own.
                await asyncio.to_thread(remove_stale_temporaries, self.settings.publication_dir)
            return [await self.issue(scope, d.why, actor=actor) for scope, d in todo]

    async def publish_due(self, *, leading: Callable[[], bool] | None = None) -> PublicationRound:
        """One round of the server's publication: every due CRL issued on its own, so that one
        scope that fails (a damaged key, a full disk for one file, a CA this configuration
        lacks) never keeps the others from being published. `leading` is asked before each
        CRL: the round stops as soon as this process no longer publishes."""
        await self._ensure_checked()
        issued: list[IssuedCrl] = []
        failed: dict[str, Exception] = {}
        async with self._issue_lock:
            todo = await self.due_scopes()
            if todo:
                await asyncio.to_thread(remove_stale_temporaries, self.settings.publication_dir)
            for scope, d in todo:
                if leading is not None and not leading():
                    break
                try:
                    issued.append(await self.issue(scope, d.why, actor=SCHEDULE))
                except Exception as e:  # noqa: BLE001 - reported per scope by the caller
                    failed[scope.name] = e
        unconfigured = {scope.name: why for scope, why in await self.unconfigured_scopes()}
        return PublicationRound(issued, failed, unconfigured)

    def crl_path(self, name: str) -> Path:
        return self.settings.publication_dir / "crl" / f"{name}.crl"

    def write_crl_file(self, name: str, number: int, der: bytes) -> None:
        """Publish one CRL file, then raise the watermark (a crash between the two leaves the
        directory as the higher witness)."""
        self._above_floor(name, number, equal_ok=True)
        path = self.crl_path(name)
        sha = self._write_published(path, der)
        self.watermark.record(name, number, sha)
        self._floors[name] = max(self._floors.get(name, 0), number)

    def _above_floor(self, name: str, number: int, *, equal_ok: bool = False) -> None:
        floor = self._floors.get(name)
        if floor is not None and (number < floor or (number == floor and not equal_ok)):
            raise StoreBehind(
                f"{name}: the store would publish CRL #{number}, but #{floor} was already published; "
                f"the store is behind what was published ({RECOVERY})")

    async def _ensure_checked(self) -> None:
        if not self._checked:
            await self.check_published()

    async def check_published(self) -> None:
        """Refuse to go on when the store is behind what the publication directory or the
        watermark show was published: a CRL number below (or equal to, with other bytes) one
        already out, or a published scope the store does not know."""
        directory = await asyncio.to_thread(witness.read_directory, self.settings.publication_dir / "crl")
        marks = witness.floors(directory, await asyncio.to_thread(self.watermark.read))
        current = {r.scope.name: r for r in await self.store.current_crls()}
        problems = []
        for name, mark in sorted(marks.items()):
            rec = current.get(name)
            if rec is None:
                problems.append(f"{name}: CRL #{mark.number} was published ({mark.source}) but the store has none")
            elif rec.number < mark.number:
                problems.append(f"{name}: CRL #{mark.number} was published ({mark.source}) but the store's "
                                f"latest is #{rec.number}")
            elif rec.number == mark.number and rec.sha256 != mark.sha256:
                problems.append(f"{name}: CRL #{mark.number} was published ({mark.source}) with other "
                                f"contents than the store's #{rec.number}")
            self._floors[name] = max(self._floors.get(name, 0), mark.number)
        self._checked = not problems
        if problems:
            raise StoreBehind(
                f"{self.settings.store_path}: the store is behind what was already published:\n  "
                + "\n  ".join(problems) + f"\nNothing was changed. To recover: {RECOVERY}.")

    async def sync_files(self) -> int:
        """Make the publication directory match the store (after a crash between archiving
        a CRL and writing its file, or a lost directory). Never writes a lower number than a
        file already holds: `check_published` runs first and sets the floors."""
        n = 0
        for rec in await self.store.current_crls():
            if await asyncio.to_thread(self._file_matches, rec):
                continue
            der = await self.store.crl_der(rec.id)
            await asyncio.to_thread(self.write_crl_file, rec.scope.name, rec.number, der)
            n += 1
        return n

    def _file_matches(self, rec: CrlRecord) -> bool:
        return self._published_sha(self.crl_path(rec.scope.name)) == rec.sha256

    def _write_published(self, path: Path, data: bytes) -> str:
        """Write a published file atomically and remember its hash; returns the SHA-256."""
        atomic_write(path, data)
        sha = hashlib.sha256(data).hexdigest()
        st = path.stat()
        self._file_state[path] = (st.st_mtime_ns, st.st_size, sha)
        return sha

    def _published_sha(self, path: Path) -> str | None:
        """The SHA-256 of a published file (None when it is missing), hashed again only when
        its size or modification time changed since this process last saw it."""
        try:
            st = path.stat()
        except FileNotFoundError:
            return None
        known = self._file_state.get(path)
        if known is not None and known[:2] == (st.st_mtime_ns, st.st_size):
            return known[2]
        sha = hashlib.sha256(path.read_bytes()).hexdigest()
        self._file_state[path] = (st.st_mtime_ns, st.st_size, sha)
        return sha

    async def add_crl(self, der: bytes, source: str, *, force: bool = False, actor: Actor = SYSTEM) -> CrlRecord:
        """Publish a CRL signed elsewhere (an offline root's ARL): verified against its
        issuer, its scope found from its IDP, its number required to increase, and refused
        when it omits a revocation the store holds for its scope (dated before its
        thisUpdate) unless `force`, which is recorded with the CRL."""
        def done(r: CrlRecord):
            kind = "arl" if r.scope.kind is ScopeKind.ARL else "crl"
            return f"{kind} {r.scope.name} #{r.number}", {"entries": r.entries, "sha256": r.sha256,
                                                           "source": r.source}

        return await self._audited(actor, "crl-add", f"crl from {source}", self._add_crl(der, source, force=force),
                                   detail={"file": source, "force": force}, done=done)

    async def _add_crl(self, der: bytes, source: str, *, force: bool) -> CrlRecord:
        await self._ensure_checked()
        found = await self.identify_crl(der, source)
        c, scope, number = found.crl, found.scope, found.number
        if found.issuer.retired_at is not None:
            raise Conflict(f"{source}: CA {found.ca.name} was retired on {found.issuer.retired_at.isoformat()}; "
                           f"it publishes no new CRLs")
        missing = await self.omitted_revocations(found)
        kind = "handed-in"
        if missing:
            listed = ", ".join(serial_hex(n) for n in missing[:20]) + (
                f" and {len(missing) - 20} more" if len(missing) > 20 else "")
            if not force:
                raise Conflict(
                    f"{source}: this CRL of {scope.name} omits {len(missing)} revoked certificate(s) the "
                    f"repository holds for it: {listed}. Publishing it would un-revoke them for relying "
                    f"parties; sign a CRL that lists them, or hand it in with --force")
            kind = f"handed-in, forced: omits {listed}"
            log.warning("%s: published with --force although it omits %d revoked certificate(s): %s",
                        source, len(missing), listed)
        try:
            record = await self.store.record_crl(
                scope, number, c.last_update_utc, c.next_update_utc, found.der,
                entries=len(c), covered_event=0, issued_at=self.clock.now(), source=kind)
        except Conflict as e:
            raise Conflict(f"{source}: {e.message}") from e
        await asyncio.to_thread(self.write_crl_file, scope.name, number, found.der)
        return record

    async def omitted_revocations(self, found: IdentifiedCrl) -> list[int]:
        """Serials revoked or held in the store for the CRL's scope, at or before its
        thisUpdate, that the CRL does not list (entries the expiry policy drops excepted)."""
        s = self.settings.crl
        this_update = found.crl.last_update_utc
        expired_before = None if s.drop_expired_after is None else this_update - s.drop_expired_after
        snap = await self.store.snapshot_entries(found.scope, expired_before=expired_before)
        listed = {r.serial_number for r in found.crl}
        return [serial for serial, at in crlmod.entry_serials_and_dates(snap.entries)
                if serial not in listed and at <= this_update]

    async def identify_crl(self, der: bytes, source: str) -> "IdentifiedCrl":
        """Parse a CRL (DER or PEM), verify it against a configured CA and find its scope
        from its IDP (creating the scope if the CA is configured for it)."""
        expected = "expected a DER or PEM CRL (an ARL is a CRL too)"
        if not der.strip():
            raise MalformedInput(f"{source}: not a CRL: the file is empty ({expected})")
        try:
            c = x509.load_der_x509_crl(der)
        except ValueError:
            try:
                c = x509.load_pem_x509_crl(der)
                der = c.public_bytes(Encoding.DER)
            except ValueError:
                # The parser's own message names ASN.1 internals, not the operator's mistake.
                what = "no valid PEM X509 CRL block" if b"-----BEGIN" in der else "neither PEM nor valid DER"
                raise MalformedInput(f"{source}: not a CRL: {what} ({expected})") from None
        candidates = [ca for ca in self.settings.cas if self._certs[ca.name].subject == c.issuer]
        ca = next((ca for ca in candidates if c.is_signature_valid(self._certs[ca.name].public_key())), None)
        if ca is None:
            if not candidates:
                raise NotFound(f"{source}: CRL issuer {c.issuer.rfc4514_string()} is not a configured CA")
            raise VerificationError(f"{source}: CRL signature does not verify against {ca_names(candidates)}")
        try:
            number = c.extensions.get_extension_for_oid(ExtensionOID.CRL_NUMBER).value.crl_number
        except x509.ExtensionNotFound:
            raise MalformedInput(f"{source}: CRL has no CRL number extension") from None
        if c.next_update_utc is None:
            raise MalformedInput(f"{source}: CRL has no nextUpdate")
        try:
            idp = c.extensions.get_extension_for_oid(ExtensionOID.ISSUING_DISTRIBUTION_POINT).value
        except x509.ExtensionNotFound:
            idp = None
        issuer = self._issuers[ca.name]
        if idp is None:
            if not ca.full_crl:
                raise MalformedInput(f"{source}: a full CRL of {ca.name}, but ca.full_crl is not configured")
            scope = await self.store.ensure_scope(issuer.id, ScopeKind.FULL, "", ca.full_crl)
        elif idp.only_contains_ca_certs:
            if not ca.arl:
                raise MalformedInput(f"{source}: an ARL of {ca.name}, but ca.arl is not configured")
            scope = await self.store.ensure_scope(issuer.id, ScopeKind.ARL, "", ca.arl)
        else:
            urls = [n.value for n in (idp.full_name or []) if isinstance(n, x509.UniformResourceIdentifier)]
            if not urls:
                raise MalformedInput(f"{source}: IDP names no URI distribution point")
            scope = await self.store.ensure_scope(issuer.id, ScopeKind.PARTITION, urls[0], partition_name(ca, urls[0]))
        return IdentifiedCrl(c, der, ca, issuer, scope, number)

    async def prune_archive(self) -> int:
        return await self.store.prune_crls(self.clock.now() - self.settings.crl.archive_retention)


    # Disclosure documents (CPS 8, CP 四.9)

    async def publish_document(self, *, kind: str, version: str, lang: str, effective: dt.date,
                               oid: str | None, data: bytes, source: str,
                               actor: Actor = SYSTEM) -> DocumentRecord:
        """Publish one version of a document: checked whole, stored (with an event), then
        written to the publication directory. Earlier versions are never touched."""
        work = self._publish_document(kind=kind, version=version, lang=lang, effective=effective, oid=oid, data=data,
                                      source=source)
        return await self._audited(actor, "document-publish", f"document {kind} {version} {lang}", work,
                                   detail={"file": source, "effective": effective.isoformat()
                                           if isinstance(effective, dt.date) else str(effective)},
                                   done=lambda r: (f"document {r.kind} {r.version} {r.lang}", {"sha256": r.sha256}))

    async def _publish_document(self, *, kind: str, version: str, lang: str, effective: dt.date,
                                oid: str | None, data: bytes, source: str) -> DocumentRecord:
        doc = docmod.check_document(kind=kind, version=version, lang=lang, effective=effective, oid=oid,
                                    data=data, source=source, kinds=self.settings.document_kinds)
        rec = await self.store.add_document(doc.kind, doc.version, doc.lang, effective=doc.effective, oid=doc.oid,
                                            media_type=docmod.MEDIA_TYPES[doc.ext], ext=doc.ext, data=doc.data,
                                            at=self.clock.now())
        self.write_document_file(rec, doc.data)
        return rec

    def write_document_file(self, rec: DocumentRecord, data: bytes) -> None:
        self._write_published(self.settings.publication_dir / rec.path, data)

    async def repair_published(self) -> tuple[int, int]:
        """Clear torn temporaries a crashed writer left, then rewrite every CRL and document
        file that is missing or differs from the store; (CRL files, document files) rewritten."""
        await asyncio.to_thread(remove_stale_temporaries, self.settings.publication_dir)
        return await self.sync_files(), await self.sync_document_files()

    async def sync_document_files(self) -> int:
        """Rewrite every document file that is missing or differs from the store (a lost
        directory, or a CLI that died between storing a version and writing it)."""
        n = 0
        for rec in await self.store.documents():
            if await asyncio.to_thread(self._document_file_matches, rec):
                continue
            found = await self.store.document_bytes(rec.kind, rec.version, rec.lang)
            if found is not None:
                await asyncio.to_thread(self.write_document_file, rec, found[1])
                n += 1
        return n

    def _document_file_matches(self, rec: DocumentRecord) -> bool:
        try:
            return self._published_sha(self.settings.publication_dir / rec.path) == rec.sha256
        except OSError:
            return False

    async def documents(self) -> list[DocumentRecord]:
        return await self.store.documents()

    async def document(self, path: docmod.DocumentPath) -> tuple[DocumentRecord, bytes]:
        found = await self.store.document_bytes(path.kind, path.version, path.lang)
        if found is None or found[0].ext != path.ext:
            raise NotFound(f"no document {path.relative}")
        return found

    # Notices (CP 四.8, 六.26)

    async def add_notice(self, *, kind: str, titles: list[tuple[str, str]], bodies: list[tuple[str, str]],
                         starts: dt.datetime | None, ends: dt.datetime | None,
                         actor: Actor = SYSTEM) -> NoticeRecord:
        """Publish a notice, checked whole first; `starts` defaults to now."""
        return await self._audited(actor, "notice-add", "notice", self._add_notice(kind, titles, bodies, starts, ends),
                                   detail={"kind": kind}, done=lambda n: (f"notice {n.id}", {}))

    async def _add_notice(self, kind, titles, bodies, starts, ends) -> NoticeRecord:
        notice = noticemod.check_notice(kind=kind, titles=titles, bodies=bodies,
                                        starts=starts or self.clock.now(), ends=ends)
        return await self.store.add_notice(notice, at=self.clock.now())

    async def withdraw_notice(self, notice_id: int, *, actor: Actor = SYSTEM) -> NoticeRecord:
        return await self._audited(actor, "notice-withdraw", f"notice {notice_id}",
                                   self.store.withdraw_notice(notice_id, at=self.clock.now()))

    async def notices(self, *, withdrawn: bool = False, limit: int | None = None) -> list[NoticeRecord]:
        return await self.store.notices(withdrawn=withdrawn, limit=limit)

    # A certificate's history, and maintenance windows (CPS 2.5). The CLI and the admin API
    # both come through here, so that the two cannot drift.

    async def certificate_history(self, issuer_name: str, serial: int, *, limit: int = 100) -> list[Event]:
        """The certificate's status changes (revoke, hold, release), oldest first, from the
        change log; NotFound for a certificate the repository does not hold."""
        issuer = self.issuer(issuer_name)
        rec = await self.store.certificate(issuer.id, serial)
        if rec is None:
            raise NotFound(f"no certificate {serial_hex(serial)} from {issuer_name}")
        return await self.store.certificate_events(rec, limit=limit)

    async def refuse_in_maintenance(self) -> None:
        """Changes to what is published pause during a maintenance window: InMaintenance,
        saying until when. Reads, and the maintenance commands themselves, go on."""
        now = self.clock.now()
        window = maintmod.active(await self.store.maintenance_windows(since=now - maintmod.WEEK), now)
        if window is not None:
            until = _iso_z(window.end) if window.end is not None else "`pkirepo maintenance end`"
            raise maintmod.InMaintenance(
                f"in maintenance until {until} ({window.kind} window {window.id}: {window.reason}): "
                f"changes are refused until it ends; reads go on")

    @property
    def maintenance_budget(self) -> dt.timedelta:
        return dt.timedelta(minutes=self.settings.policy.max_maintenance_minutes_per_week)

    async def maintenance_windows(self, *, all_windows: bool = False) -> list[maintmod.Window]:
        """The windows of the last 7 days and those announced; every one with `all_windows`."""
        now = self.clock.now()
        return await self.store.maintenance_windows(since=None if all_windows else now - maintmod.WEEK)

    async def schedule_maintenance(self, start: dt.datetime, end: dt.datetime, reason: str, *,
                                   actor: Actor = SYSTEM) -> maintmod.Window:
        """Announce a window; Conflict when it overlaps another or goes over the budget of
        some rolling 7 days."""
        return await self._audited(
            actor, "maintenance-schedule", "maintenance window",
            self.store.schedule_maintenance(start, end, reason, budget=self.maintenance_budget, at=self.clock.now()),
            detail={"start": start.isoformat(), "minutes": maintmod.minutes(end - start), "reason": reason},
            done=lambda w: (f"maintenance window {w.id}", {}))

    async def cancel_maintenance(self, window_id: int, *, actor: Actor = SYSTEM) -> maintmod.Window:
        return await self._audited(actor, "maintenance-cancel", f"maintenance window {window_id}",
                                   self.store.cancel_maintenance(window_id, at=self.clock.now()))

    async def start_maintenance(self, reason: str, *, actor: Actor = SYSTEM) -> maintmod.Window:
        """Emergency maintenance from now until `end_maintenance` (not counted in the budget)."""
        return await self._audited(actor, "maintenance-start", "emergency maintenance window",
                                   self.store.start_emergency_maintenance(reason, at=self.clock.now()),
                                   detail={"reason": reason}, done=lambda w: (f"maintenance window {w.id}", {}))

    async def end_maintenance(self, reason: str | None, *, actor: Actor = SYSTEM) -> maintmod.Window:
        return await self._audited(actor, "maintenance-end", "maintenance window under way",
                                   self.store.end_maintenance(reason, at=self.clock.now()),
                                   detail={"reason": reason}, done=lambda w: (f"maintenance window {w.id}", {}))


def _iso_z(when: dt.datetime) -> str:
    return when.astimezone(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


#: Certificates named in one record's detail; a bigger batch gives the count of the rest.
AUDIT_LISTED = 1000


def _new_cert(cert: x509.Certificate, issuer_id: int) -> NewCert:
    return NewCert(
        issuer_id=issuer_id,
        serial=cert.serial_number,
        der=cert.public_bytes(Encoding.DER),
        subject=cert.subject.rfc4514_string(),
        not_before=cert.not_valid_before_utc,
        not_after=cert.not_valid_after_utc,
        dp_url=certmod.crl_dp_url(cert),
        is_ca=certmod.is_ca(cert),
    )


def _covers(scope: Scope, cert: CertRecord) -> bool:
    """Whether `cert` belongs in `scope` (the rules of SQLiteStore.snapshot_entries)."""
    if scope.kind is ScopeKind.FULL:
        return True
    if scope.kind is ScopeKind.ARL:
        return cert.is_ca
    return not cert.is_ca and cert.dp_url == scope.dp_url


def _describe_scope(key: tuple[str, ScopeKind, str]) -> str:
    ca, kind, url = key
    what = {ScopeKind.FULL: "the full CRL", ScopeKind.ARL: "the ARL"}.get(kind, f"the partition CRL {url}")
    return f"{what} of {ca}"


def _signable(ca: CaSettings, issuer: Issuer, signers: Mapping[str, Signer]) -> bool:
    """A CA whose CRLs this process signs: its key is here and it is not retired."""
    return ca.name in signers and issuer.retired_at is None


def ca_names(cas: list[CaSettings]) -> str:
    return ", ".join(ca.name for ca in cas)


