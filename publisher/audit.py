"""The audit trail's records and checkpoints as bytes: the canonical encoding each record's
hash is taken over, the chain check, and the signed checkpoint. Pure: no I/O.

A record carries its sequence number and the SHA-256 of the record before it, so that
changing, removing or inserting any record breaks the chain at that point (CPS 4.5; CP
七.16-24). The chain alone cannot show that its newest records were cut off: a checkpoint,
signed with a key the store does not hold and shipped off the host, vouches for the
sequence number and hash of the head at a time, and a trail shorter than a checkpoint, or
different at its sequence number, is tampered with.
"""
from __future__ import annotations

import base64
import binascii
import datetime as dt
import hashlib
import json
from dataclasses import dataclass
from typing import Mapping

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519

from .errors import Conflict, MalformedInput, NotAllowed, NotFound, RepoError

UTC = dt.timezone.utc
#: The previous hash of the very first record.
GENESIS = "0" * 64
RECORD_FORMAT = "pkirepo-audit/1"
CHECKPOINT_FORMAT = "pkirepo-audit-checkpoint/1"
#: What a detail may hold at most, as JSON text: a record is a line in an archive, not a
#: payload; a batch of a thousand certificates named by CA and serial fits.
MAX_DETAIL = 131_072


@dataclass(frozen=True)
class Entry:
    """One event before it takes its place in the chain. `at` is in whole seconds; `detail`
    is canonical JSON text (see `detail_text`) or None."""

    at: dt.datetime
    actor_kind: str
    actor_name: str
    actor_source: str | None
    action: str
    obj: str
    result: str
    detail: str | None = None


#: The `audit` table's columns, in the order `Record.from_row` reads them (both stores).
COLUMNS = "seq, at, actor_kind, actor_name, actor_source, action, object, result, detail, prev, hash"


@dataclass(frozen=True)
class Record:
    """A stored record: the entry, its place and both hashes (lower-case hex)."""

    seq: int
    entry: Entry
    prev: str
    hash: str

    @classmethod
    def from_row(cls, row) -> "Record":
        """A record from a row of the store's `audit` table, its columns in `COLUMNS` order."""
        return cls(row[0], Entry(dt.datetime.fromtimestamp(row[1], dt.timezone.utc), *row[2:9]), row[9], row[10])

    def json(self) -> dict:
        """The record as `audit export` writes it, one JSON object a line."""
        e = self.entry
        return {"seq": self.seq, "time": e.at.isoformat().replace("+00:00", "Z"),
                "actor": {"kind": e.actor_kind, "name": e.actor_name, "source": e.actor_source},
                "action": e.action, "object": e.obj, "result": e.result,
                "detail": None if e.detail is None else json.loads(e.detail),
                "prev": self.prev, "hash": self.hash}


def _unix(when: dt.datetime) -> int:
    return int(when.timestamp())


def _text(value: object) -> bytes:
    # ASCII only (every other character escaped): the bytes are the same whatever the
    # platform's encoding, and any string, even one a database would refuse, round-trips.
    return json.dumps(value, ensure_ascii=True, separators=(",", ":"), allow_nan=False).encode("ascii")


def detail_text(detail: Mapping[str, object] | None) -> str | None:
    """Canonical JSON of a detail mapping (sorted keys, no spaces): stored as it is hashed.
    ValueError when it is not JSON (a float NaN, a set) or too big."""
    if detail is None:
        return None
    try:
        text = json.dumps(dict(detail), ensure_ascii=True, sort_keys=True, separators=(",", ":"), allow_nan=False)
    except (TypeError, ValueError) as e:
        raise ValueError(f"audit detail is not JSON: {e}") from None
    if len(text) > MAX_DETAIL:
        raise ValueError(f"audit detail of {len(text)} characters; at most {MAX_DETAIL}")
    return text


def canonical(seq: int, entry: Entry, prev: str) -> bytes:
    """The bytes a record's hash is taken over: a JSON array in a fixed order."""
    e = entry
    return _text([RECORD_FORMAT, seq, _unix(e.at), e.actor_kind, e.actor_name, e.actor_source, e.action, e.obj,
                  e.result, e.detail, prev])


def decode(data: bytes) -> tuple[int, Entry, str]:
    """(seq, entry, prev) from `canonical` bytes; MalformedInput otherwise."""
    try:
        v = json.loads(data.decode("ascii"))
    except (UnicodeDecodeError, ValueError):
        raise MalformedInput("not an audit record's canonical encoding") from None
    if (not isinstance(v, list) or len(v) != 11 or v[0] != RECORD_FORMAT
            or not all(type(x) is int for x in (v[1], v[2]))
            or not all(isinstance(x, str) for x in (v[3], v[4], v[6], v[7], v[8], v[10]))
            or not all(x is None or isinstance(x, str) for x in (v[5], v[9]))):
        raise MalformedInput("not an audit record's canonical encoding")
    try:
        at = dt.datetime.fromtimestamp(v[2], UTC)
    except (OverflowError, OSError, ValueError):
        raise MalformedInput("audit record time out of range") from None
    return v[1], Entry(at, v[3], v[4], v[5], v[6], v[7], v[8], v[9]), v[10]


def chain_hash(seq: int, entry: Entry, prev: str) -> str:
    return hashlib.sha256(canonical(seq, entry, prev)).hexdigest()


def seal(entry: Entry, *, after: tuple[int, str] | None) -> Record:
    """The record that follows `after` (the head's sequence number and hash; None: the first)."""
    seq, prev = (0, GENESIS) if after is None else after
    return Record(seq + 1, entry, prev, chain_hash(seq + 1, entry, prev))


def refusal(e: RepoError) -> str:
    """The `result` of a refused change: why, as the service layer said it."""
    kind = ("malformed input" if isinstance(e, MalformedInput) else "not found" if isinstance(e, NotFound)
            else "conflict" if isinstance(e, Conflict) else "not allowed" if isinstance(e, NotAllowed)
            else "failed")
    return f"refused ({kind}): {e.message}" if kind != "failed" else f"failed: {e.message}"


class ChainCheck:
    """Checks records fed in sequence order, one page at a time (a trail of years does not
    fit in memory). `start` is what the first record must follow: (0, GENESIS) for a whole
    trail, or the (sequence number, hash) the oldest records were pruned up to."""

    def __init__(self, start: tuple[int, str] = (0, GENESIS)) -> None:
        self.last_seq, self.last_hash = start
        self.count = 0

    def add(self, rec: Record) -> str | None:
        """The first problem with this record, or None."""
        if rec.seq != self.last_seq + 1:
            missing = self.last_seq + 1
            return (f"record {missing}: gap: the trail goes from record {self.last_seq} to {rec.seq}"
                    if rec.seq > missing else f"record {rec.seq}: out of order after record {self.last_seq}")
        computed = chain_hash(rec.seq, rec.entry, rec.prev)
        if computed != rec.hash:
            return (f"record {rec.seq}: hash mismatch: its content was changed after it was written "
                    f"(stored {rec.hash[:16]}…, computed {computed[:16]}…)")
        if rec.prev != self.last_hash:
            return (f"record {rec.seq}: broken link: its previous hash does not match record {self.last_seq}"
                    f" (record {self.last_seq} was changed or replaced)")
        self.last_seq, self.last_hash = rec.seq, rec.hash
        self.count += 1
        return None


# Checkpoints


@dataclass(frozen=True)
class Checkpoint:
    """The head of the trail at a time, signed. `key_id`: SHA-256 of the signing key's
    SubjectPublicKeyInfo, hex; `algorithm`: ed25519 or ecdsa-p256-sha256."""

    seq: int
    head: str
    at: dt.datetime
    key_id: str
    algorithm: str
    signature: bytes

    def json(self) -> dict:
        return {"format": CHECKPOINT_FORMAT, "seq": self.seq, "head": self.head,
                "time": self.at.isoformat().replace("+00:00", "Z"), "key_id": self.key_id,
                "algorithm": self.algorithm, "signature": base64.b64encode(self.signature).decode()}


ALGORITHMS = ("ed25519", "ecdsa-p256-sha256")


def checkpoint_message(seq: int, head: str, at: dt.datetime) -> bytes:
    return _text([CHECKPOINT_FORMAT, seq, head, _unix(at)])


def key_id(public_key) -> str:
    spki = public_key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    return hashlib.sha256(spki).hexdigest()


def algorithm_of(key) -> str:
    """The checkpoint algorithm of a private or public key; ValueError for any other key."""
    if isinstance(key, (ed25519.Ed25519PrivateKey, ed25519.Ed25519PublicKey)):
        return "ed25519"
    if isinstance(key, (ec.EllipticCurvePrivateKey, ec.EllipticCurvePublicKey)) and isinstance(key.curve, ec.SECP256R1):
        return "ecdsa-p256-sha256"
    raise ValueError("a checkpoint key is Ed25519 or EC P-256")


def sign_checkpoint(private_key, seq: int, head: str, at: dt.datetime) -> Checkpoint:
    algorithm = algorithm_of(private_key)
    message = checkpoint_message(seq, head, at)
    if algorithm == "ed25519":
        signature = private_key.sign(message)
    else:
        signature = private_key.sign(message, ec.ECDSA(hashes.SHA256()))
    return Checkpoint(seq, head, at, key_id(private_key.public_key()), algorithm, signature)


def checkpoint_problem(cp: Checkpoint, public_key) -> str | None:
    """Why the checkpoint does not verify under `public_key`, or None."""
    if cp.key_id != key_id(public_key):
        return f"signed by another key (key id {cp.key_id[:16]}…, not that of the checkpoint key checked against)"
    if cp.algorithm != algorithm_of(public_key):
        return f"algorithm {cp.algorithm} does not match the configured key"
    message = checkpoint_message(cp.seq, cp.head, cp.at)
    try:
        if cp.algorithm == "ed25519":
            public_key.verify(cp.signature, message)
        else:
            public_key.verify(cp.signature, message, ec.ECDSA(hashes.SHA256()))
    except InvalidSignature:
        return "bad signature"
    return None


class CheckpointKeys:
    """The checkpoint keys a verifier trusts: the current key first, then each retired one,
    newest to oldest (`audit.checkpoint_previous_keys`). A rotation keeps every earlier
    checkpoint verifiable, and a retired key may sign nothing after its successor has
    signed: whoever kept a retired private key cannot vouch with it for a trail rewritten
    after the rotation."""

    def __init__(self, public_keys) -> None:
        self.keys = tuple(public_keys)
        self._rank: dict[str, int] = {}
        for i, k in enumerate(self.keys):
            self._rank.setdefault(key_id(k), i)

    def __bool__(self) -> bool:
        return bool(self.keys)

    def rank(self, cp: Checkpoint) -> int | None:
        """0 for the current key, 1 for the one before it, ...; None for a key not listed."""
        return self._rank.get(cp.key_id)

    def problem(self, cp: Checkpoint) -> str | None:
        """Why the checkpoint does not verify under any of the keys, or None."""
        rank = self.rank(cp)
        if rank is None:
            listed = "the checkpoint key" if len(self.keys) == 1 else f"any of the {len(self.keys)} checkpoint keys"
            return (f"signed by another key (key id {cp.key_id[:16]}…, not that of {listed} checked against; "
                    f"a retired checkpoint key belongs in audit.checkpoint_previous_keys)")
        return checkpoint_problem(cp, self.keys[rank])


def parse_checkpoint(data: bytes, source: str) -> Checkpoint:
    """A checkpoint file as `Checkpoint.json` writes it; MalformedInput naming `source`."""
    def bad(why: str) -> MalformedInput:
        return MalformedInput(f"{source}: not an audit checkpoint: {why}")

    try:
        v = json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        raise bad("not JSON") from None
    if not isinstance(v, dict) or v.get("format") != CHECKPOINT_FORMAT:
        raise bad(f"no \"format\": \"{CHECKPOINT_FORMAT}\"")
    seq, head, time, kid, alg, sig = (v.get(k) for k in ("seq", "head", "time", "key_id", "algorithm", "signature"))
    if type(seq) is not int or seq < 0:
        raise bad("seq must be a non-negative integer")
    for name, value in (("head", head), ("key_id", kid)):
        if not isinstance(value, str) or len(value) != 64 or any(c not in "0123456789abcdef" for c in value):
            raise bad(f"{name} must be 64 lower-case hex digits")
    if alg not in ALGORITHMS:
        raise bad(f"algorithm must be one of {', '.join(ALGORITHMS)}")
    try:
        at = dt.datetime.fromisoformat(time.replace("Z", "+00:00")) if isinstance(time, str) else None
    except ValueError:
        at = None
    if at is None or at.tzinfo is None:
        raise bad("time must be an ISO 8601 time in UTC")
    try:
        signature = base64.b64decode(sig, validate=True) if isinstance(sig, str) else None
    except (binascii.Error, ValueError):
        signature = None
    if not signature:
        raise bad("signature must be base64")
    return Checkpoint(seq, head, at.astimezone(UTC), kid, alg, signature)
