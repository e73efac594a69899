"""The trust list's operations over the injected store, XML signer and clock: each change
issues the next list (a higher sequence number, an issue date and a next-update date),
signed once and stored with its bytes; earlier lists stay retrievable as they were signed."""
from __future__ import annotations

import datetime as dt
import logging
from typing import Callable, Sequence

from . import trustlist as tl
from . import trustlist_xml
from .actor import SYSTEM, Actor, AuditSink, NoAudit
from .audit_trail import audited
from .clock import Clock
from .errors import Conflict, MalformedInput, NotFound
from .store import Store, TrustListRecord
from .trustlist_settings import TrustListSettings
from .xmlsig import XmlSigner

log = logging.getLogger("pkirepo.trustlist")


class TrustListService:
    """`signer` is needed only to change the list; serving reads the stored bytes."""

    def __init__(self, settings: TrustListSettings, *, store: Store, clock: Clock, base_url: str,
                 ca_certificate: Callable[[str], bytes], ca_names: Sequence[str],
                 signer: XmlSigner | None = None, audit: AuditSink | None = None) -> None:
        self.settings = settings
        self.audit: AuditSink = audit if audit is not None else NoAudit()
        self.store = store
        self.clock = clock
        self.base_url = base_url.rstrip("/")
        self._ca_certificate = ca_certificate
        self.ca_names = tuple(ca_names)
        self.signer = signer

    @property
    def distribution_url(self) -> str:
        return f"{self.base_url}/trustlist/current.xml"

    def _ca(self, name: str) -> bytes:
        if name not in self.ca_names:
            raise NotFound(f"unknown CA name {name!r}; configured CAs: {', '.join(self.ca_names)}")
        return self._ca_certificate(name)

    def _when(self, at: dt.datetime | None, now: dt.datetime) -> dt.datetime:
        if at is None:
            return now
        at = tl.utc_seconds(at)
        if at > now:
            raise MalformedInput(f"status date {at.isoformat()} is in the future: a list states what holds "
                                 f"when it is issued")
        return at

    async def add(self, *, ca_name: str, cert_type: str, policy_oids: list[str] | None, cps_url: str,
                  names: dict[str, str | None], at: dt.datetime | None = None,
                  actor: Actor = SYSTEM) -> TrustListRecord:
        """List a certificate type of a CA as granted; the next list is issued."""
        return await self._audited(actor, "trustlist-add", {"ca": ca_name, "type": cert_type},
                                   self._add(ca_name=ca_name, cert_type=cert_type, policy_oids=policy_oids,
                                             cps_url=cps_url, names=names, at=at))

    async def _audited(self, actor: Actor, action: str, detail: dict, work) -> TrustListRecord:
        return await audited(self.audit, actor, action, "trustlist", work, detail=detail,
                             done=lambda rec: (f"trustlist #{rec.seq}", {"sha256": rec.sha256}))

    async def _add(self, *, ca_name: str, cert_type: str, policy_oids: list[str] | None, cps_url: str,
                   names: dict[str, str | None], at: dt.datetime | None) -> TrustListRecord:
        ctype = tl.parse_type(cert_type)
        ca_der = self._ca(ca_name)
        oids = tl.check_policy_oids(ctype, policy_oids)
        cps = tl.check_url(cps_url, "CPS URL")
        checked = tl.check_names(names, f"{ca_name} {ctype.value}")
        now = tl.utc_seconds(self.clock.now())
        when = self._when(at, now)
        seq, entries = await self.store.trustlist_state()
        entry = tl.grant(entries, ca_name=ca_name, ca_cert_der=ca_der, cert_type=ctype, policy_oids=oids,
                         cps_url=cps, names=checked, at=when)
        return await self._issue(seq, entries, entry, now)

    async def change(self, *, ca_name: str, cert_type: str, status: tl.Status,
                     at: dt.datetime | None = None, actor: Actor = SYSTEM) -> TrustListRecord:
        """Suspend, withdraw or reinstate an entry; the next list is issued."""
        return await self._audited(actor, "trustlist-change",
                                   {"ca": ca_name, "type": cert_type, "status": getattr(status, "value", str(status))},
                                   self._change(ca_name=ca_name, cert_type=cert_type, status=status, at=at))

    async def _change(self, *, ca_name: str, cert_type: str, status: tl.Status,
                      at: dt.datetime | None) -> TrustListRecord:
        ctype = tl.parse_type(cert_type)
        now = tl.utc_seconds(self.clock.now())
        when = self._when(at, now)
        seq, entries = await self.store.trustlist_state()
        entry = tl.change_status(entries, ca_name=ca_name, cert_type=ctype, status=status, at=when)
        return await self._issue(seq, entries, entry, now)

    async def reissue(self, *, actor: Actor = SYSTEM) -> TrustListRecord:
        """The same entries in a new list, before the current one's next update passes."""
        return await self._audited(actor, "trustlist-reissue", {}, self._reissue())

    async def _reissue(self) -> TrustListRecord:
        now = tl.utc_seconds(self.clock.now())
        seq, entries = await self.store.trustlist_state()
        return await self._issue(seq, entries, None, now)

    async def _issue(self, seq: int, entries: tuple[tl.Entry, ...], changed: tl.Entry | None,
                     now: dt.datetime) -> TrustListRecord:
        if self.signer is None:
            raise Conflict("no trust-list signing key loaded")
        if changed is not None:
            entries = tl.replace_entry(entries, changed)
        latest = await self.store.trustlist_bytes(seq) if seq else None
        if latest is not None and now <= latest[0].issued_at:
            # Issue dates rise with sequence numbers, so a list can never look older than the one it replaces.
            now = latest[0].issued_at + dt.timedelta(seconds=1)
        doc = tl.TrustList(seq + 1, now, now + self.settings.next_update, self.settings.operator,
                           self.distribution_url, entries)
        xml = trustlist_xml.build_xml(doc)
        signed = self.signer.sign(xml)
        # What is stored is exactly what was checked: it matches the schema and reads back the same.
        if trustlist_xml.parse_xml(signed) != doc:
            raise RuntimeError("the signed trust list does not read back as built")
        rec = await self.store.add_trustlist(prev_seq=seq, changed=changed, issued_at=now,
                                             next_update=doc.next_update, xml=signed)
        log.info("trust list %d issued (%s)", rec.seq, "reissue" if changed is None
                 else f"{changed.label} {changed.status.status.value}")
        return rec

    async def records(self) -> list[TrustListRecord]:
        return await self.store.trustlists()

    async def get(self, seq: int | None = None) -> tuple[TrustListRecord, bytes]:
        """List `seq` (None: the current one) and its signed bytes; NotFound naming the range."""
        found = await self.store.trustlist_bytes(seq)
        if found is None:
            if seq is None:
                raise NotFound("no trust list has been issued yet")
            current = await self.store.trustlist_bytes(None)
            have = f"lists 1 to {current[0].seq}" if current else "no list yet"
            raise NotFound(f"no trust list number {seq} ({have})")
        return found
