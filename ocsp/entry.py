"""A pre-signed answer about one certificate (`Entry`) and the rules for reusing one.

Pure: an `Entry` converts to and from the store's `PresignedResponse` row, and whether a
stored answer may still be served is a function of the row, the certificate's state, the
responder and `now`.
"""
from __future__ import annotations

import datetime as dt
import hashlib
from dataclasses import dataclass

from publisher.clock import http_date
from publisher.store import PresignedResponse, Status

from .request import HashAlgorithm
from .response import assemble, single_of
from .source import CertState, cert_state

# Rows in the store name their CertID hash by its hashlib name.
HASH_BY_NAME = {h.hashlib_name: h for h in HashAlgorithm}

#: What an entry is kept under: (issuer id, serial, CertID hash algorithm).
EntryKey = tuple[int, int, HashAlgorithm]


@dataclass(frozen=True, slots=True)
class Entry:
    """One signed answer about one certificate under one CertID hash algorithm.

    Kept as what was signed (`signed`) and the responder's shared `certs` field: the served
    bytes are their concatenation inside the OCSPResponse wrapper (`der`), so that an answer
    in memory or in the store does not carry its own copy of the responder certificate."""

    issuer_id: int
    serial: int
    hash_algorithm: HashAlgorithm
    state: CertState
    responder_key_hash: bytes
    this_update: dt.datetime
    next_update: dt.datetime
    signed: bytes
    certs: bytes
    extended_revoke: bool

    @classmethod
    def make(cls, issuer_id, serial, hash_algorithm, state, key_hash, this_update, next_update, signed, certs,
             extended_revoke) -> Entry:
        return cls(issuer_id, serial, hash_algorithm, state, key_hash, this_update, next_update, signed, certs,
                   extended_revoke)

    # RFC 5019 §6 header values, computed per GET (a few µs): kept, they would triple the
    # objects per cached answer that each full garbage collection walks with the loop held.

    @property
    def etag(self) -> str:
        # The signature alone tells answers apart: the ETag need not hash the certificate.
        return f'"{hashlib.sha256(self.signed).hexdigest()[:32]}"'

    @property
    def last_modified(self) -> str:
        return http_date(self.this_update)

    @property
    def expires(self) -> str:
        return http_date(self.next_update)

    @classmethod
    def from_row(cls, row: PresignedResponse, certs: bytes) -> Entry:
        # Only pre-signable answers are stored, and those never need Extended Revoke.
        state = cert_state(Status(row.status), row.reason, row.revoked_at)
        return cls.make(row.issuer_id, row.serial, HASH_BY_NAME[row.hash_name], state, row.responder_key_hash,
                        row.this_update, row.next_update, row.signed, certs, False)

    @property
    def key(self) -> EntryKey:
        return (self.issuer_id, self.serial, self.hash_algorithm)

    def packed(self) -> tuple:
        """The entry as a plain tuple of ints, strings, bytes and datetimes: the garbage
        collector stops tracking such a tuple, so that a full collection does not walk every
        cached answer while the event loop waits (100,000 entries cost over 100 ms)."""
        st = self.state
        return (self.issuer_id, self.serial, self.hash_algorithm.hashlib_name,
                None if st.status is None else int(st.status), st.reason, st.revoked_at, self.responder_key_hash,
                self.this_update, self.next_update, self.signed, self.certs, self.extended_revoke)

    @classmethod
    def unpack(cls, t: tuple) -> Entry:
        state = cert_state(None if t[3] is None else Status(t[3]), t[4], t[5])
        return cls(t[0], t[1], HASH_BY_NAME[t[2]], state, t[6], t[7], t[8], t[9], t[10], t[11])

    @property
    def cache_key(self) -> tuple[int, int, str]:
        return (self.issuer_id, self.serial, self.hash_algorithm.hashlib_name)

    @property
    def der(self) -> bytes:
        """The OCSPResponse as served."""
        return assemble(self.signed, self.certs)

    @property
    def single_der(self) -> bytes:
        """The SingleResponse, to sign again with a nonce."""
        return single_of(self.signed)

    def stored(self, refresh: dt.timedelta) -> PresignedResponse:
        return PresignedResponse(
            self.issuer_id, self.serial, self.hash_algorithm.hashlib_name, int(self.state.status), self.state.reason,
            self.state.revoked_at, self.responder_key_hash, self.this_update, self.next_update,
            refresh_at(self.serial, self.this_update, self.next_update, refresh), self.signed,
        )


def refresh_at(serial: int, this_update: dt.datetime, next_update: dt.datetime, refresh: dt.timedelta) -> dt.datetime:
    """When the pre-signer signs an answer again: at `due()`'s time less up to a quarter of the
    period, chosen by the serial. Answers signed together in a first pass thus come due spread
    over an hour (of the default 4 h) rather than all at once, and spread further each round."""
    period = min(refresh, (next_update - this_update) / 2)
    spread = (serial * 2654435761 % 1024) / 4096  # 0 .. <0.25, fixed per serial
    return this_update + period * (1 - spread)


def cache_key(issuer_id: int, serial: int, hash_algorithm: HashAlgorithm) -> tuple[int, int, str]:
    """What the answer cache keeps an entry under."""
    return (issuer_id, serial, hash_algorithm.hashlib_name)


def due(this_update: dt.datetime, next_update: dt.datetime, now: dt.datetime, refresh: dt.timedelta) -> bool:
    """Time to sign again: the refresh period is over, or half the validity is gone."""
    return now >= min(this_update + refresh, this_update + (next_update - this_update) / 2)


def row_usable(row: PresignedResponse, state: CertState, key_hash: bytes, now: dt.datetime,
               refresh: dt.timedelta) -> bool:
    """A stored answer still says what the certificate's state says, was signed by the
    responder key `key_hash` names, and is not due for signing again."""
    return (
        row.status == int(state.status)
        and row.reason == state.reason
        and row.revoked_at == state.revoked_at
        and row.responder_key_hash == key_hash
        and not due(row.this_update, row.next_update, now, refresh)
    )
