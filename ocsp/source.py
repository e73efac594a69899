"""Where certificate status comes from: the repository's store.

One method, like Boulder's `Source`: the responder asks for the state of (issuer, serial)
and gets what the store holds now, or None for a serial the CA never issued.
"""
from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Protocol

from publisher.crl import Reason
from publisher.store import Status, Store

from .response import CertStatus

#: RFC 5280 serials are positive and at most 20 octets; anything else was never issued.
MAX_SERIAL = 2**160


@dataclass(frozen=True, slots=True)
class CertState:
    """What an OCSP answer says about one certificate; also the key for telling whether a
    pre-signed answer still holds."""

    status: Status | None  # None: never issued
    reason: int | None = None
    revoked_at: dt.datetime | None = None

    @property
    def issued(self) -> bool:
        return self.status is not None

    def answer(self) -> tuple[CertStatus, dt.datetime | None, Reason | None]:
        """(certStatus, revocationTime, revocationReason) for a SingleResponse."""
        if self.status is None:
            return CertStatus.UNKNOWN, None, None
        if self.status is Status.GOOD:
            return CertStatus.GOOD, None, None
        if self.status is Status.HOLD:
            return CertStatus.REVOKED, self.revoked_at, Reason.certificateHold
        # RFC 5280 §5.3.1 leaves `unspecified` out; an absent reason says the same in OCSP.
        reason = None if self.reason in (None, 0) else Reason(self.reason)
        return CertStatus.REVOKED, self.revoked_at, reason


NEVER_ISSUED = CertState(None)
GOOD = CertState(Status.GOOD)


def cert_state(status: Status | None, reason: int | None, revoked_at: dt.datetime | None) -> CertState:
    """A CertState; the common ones shared, so that cached answers do not each hold a copy."""
    if reason is None and revoked_at is None:
        if status is Status.GOOD:
            return GOOD
        if status is None:
            return NEVER_ISSUED
    return CertState(status, reason, revoked_at)


class StatusSource(Protocol):
    async def state(self, issuer_id: int, serial: int) -> CertState:
        """The certificate's current state; NEVER_ISSUED if the issuer has no such serial."""


class StoreStatusSource:
    """Status straight from the repository's `Store`.

    `configured_cas` names (issuer id, serial) pairs of CA certificates that we serve and
    that one of our CAs issued (an issuing CA under our root). The repository keeps those
    as issuers, not as certificates, so without this the root's responder would call its
    own sub-CA `unknown`. A record in the store, if there is one, wins.
    """

    def __init__(self, store: Store, *, configured_cas: frozenset[tuple[int, int]] = frozenset()) -> None:
        self.store = store
        self.configured_cas = configured_cas

    async def state(self, issuer_id: int, serial: int) -> CertState:
        if serial < 0 or serial >= MAX_SERIAL:
            return NEVER_ISSUED
        rec = await self.store.certificate(issuer_id, serial)
        if rec is None:
            if (issuer_id, serial) in self.configured_cas:
                return CertState(Status.GOOD)
            return NEVER_ISSUED
        return CertState(rec.status, None if rec.reason is None else int(rec.reason), rec.revoked_at)


def configured_ca_serials(issuers) -> frozenset[tuple[int, int]]:
    """(parent issuer id, serial) of every served CA certificate that another served CA
    signed. `issuers` are `publisher.store.Issuer` records."""
    from cryptography import x509
    from cryptography.exceptions import InvalidSignature

    certs = {i.id: x509.load_der_x509_certificate(i.cert_der) for i in issuers}
    out = set()
    for child_id, child in certs.items():
        for parent_id, parent in certs.items():
            if parent_id == child_id or child.issuer != parent.subject:
                continue
            try:
                child.verify_directly_issued_by(parent)
            except (InvalidSignature, ValueError, TypeError):
                continue
            out.add((parent_id, child.serial_number))
    return frozenset(out)
