"""Importing an `openssl ca` database into the store, with progress."""
from __future__ import annotations

import asyncio
import itertools
import multiprocessing
import os
from collections import deque
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Callable


from . import certs as certmod
from . import crl as crlmod
from .errors import MalformedInput, NotFound
from .files import read_input
from .openssl_index import parse_line
from .service import Repository
from .store import NewCert, Status

BATCH = 50_000


async def import_openssl_index(
    repo: Repository,
    index: Path,
    ca_file: Path,
    certs_dir: Path | None,
    *,
    progress: Callable[[int, int], None] | None = None,
    crl_number_floor: int | None = None,
    dry_run: bool = False,
) -> tuple[int, int]:
    """Import every line of index.txt for the configured CA whose certificate is `ca_file`.

    All lines are parsed and checked before anything is written, then written in one
    transaction: a bad line anywhere imports nothing. `crl_number_floor` (openssl's
    crlnumber) makes every CRL of that CA numbered above it. With `dry_run` every check
    runs, duplicates with the store included, and nothing is kept."""
    ca_cert = certmod.split_certificates(read_input(ca_file), str(ca_file))[0]
    ca = next((c for c in repo.settings.cas if repo.issuer_certificate(c.name) == ca_cert), None)
    if ca is None:
        raise NotFound(f"{ca_file}: this CA certificate is not configured under [[ca]]")
    issuer = repo.issuer(ca.name)
    policy = repo.settings.crl.reason_policy
    try:
        total = sum(1 for line in index.open("rb") if line.strip())
    except OSError as e:
        raise MalformedInput(f"{index}: cannot read: {e.strerror}") from None
    counted = {"lines": 0, "revoked": 0}

    async def chunks():
        """Parsed lines in chunks, in file order; the store writes one while the next ones
        are parsed in worker processes. A bad line raises here, inside the store's
        transaction: nothing of the index is kept."""
        seen: dict[int, int] = {}
        done = 0
        async for chunk, line_nos in _parsed_batches(index, issuer.id, policy):
            for c, n in zip(chunk, line_nos):
                first = seen.setdefault(c.serial, n)
                if first != n:
                    raise MalformedInput(f"{index}:{n}: serial {c.serial:X} appears twice (also on line {first})")
            if certs_dir is not None:
                chunk = [_with_certificate_file(certs_dir, c, ca_cert, index) for c in chunk]
            done += len(chunk)
            counted["revoked"] += sum(1 for c in chunk if c.status != Status.GOOD)
            urls.update(c.dp_url for c in chunk if c.dp_url and not c.is_ca)
            if progress:
                progress(done, total)
            yield chunk
        counted["lines"] = done
        # Still inside the transaction: what would fail after it (no certificates, CRL names
        # the new distribution points would take) fails here, and nothing is kept.
        if not done:
            raise MalformedInput(f"{index}: no certificates in the index")
        await repo.check_new_scopes(ca, urls)

    urls: set[str] = set()
    await repo.store.add_certificates_stream(chunks(), at=repo.clock.now(), dry_run=dry_run)
    if dry_run:
        return counted["lines"], counted["revoked"]
    await repo.ensure_scopes(ca)
    if crl_number_floor is not None:
        await repo.store.raise_crl_number_floor(issuer.id, crl_number_floor, at=repo.clock.now())
    return counted["lines"], counted["revoked"]


def parse_batch(lines: list[bytes], first_line: int, source: str, issuer_id: int,
                policy: crlmod.ReasonPolicy) -> tuple[list[NewCert], list[int]]:
    """Index lines to NewCerts with their CRL entries. Pure and picklable: runs in worker
    processes, because a million lines of Python parsing would otherwise serialise with
    SQLite's inserts on the GIL."""
    out: list[NewCert] = []
    line_nos: list[int] = []
    hold = crlmod.Reason.certificateHold
    encode = crlmod.encode_entry
    for i, raw in enumerate(lines):
        n = first_line + i
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError as e:
            raise MalformedInput(f"{source}:{n}: not UTF-8 text (byte {e.start})") from None
        if not text.strip():
            continue
        line = parse_line(text, n, source)
        if line.status == "R":
            status = Status.HOLD if line.reason is hold else Status.REVOKED
            entry = encode(line.serial, line.revoked_at, line.reason, line.invalidity, policy)
        else:
            status, entry = Status.GOOD, None
        # Plain ints for enums and times: they cross a process boundary, where unpickling an
        # enum member or an aware datetime costs Python-level work each (NewCert allows it).
        out.append(NewCert(issuer_id, line.serial, None, line.subject, None, _epoch(line.expiry), None, False,
                           int(status), None if line.reason is None else int(line.reason),
                           _epoch(line.revoked_at), _epoch(line.invalidity), entry))
        line_nos.append(n)
    return out, line_nos


def _epoch(when):
    return None if when is None else int(when.timestamp())


async def _parsed_batches(index: Path, issuer_id: int, policy: crlmod.ReasonPolicy):
    """Batches of parsed lines (and their line numbers) in file order. Large files are parsed by a pool of worker
    processes, a few batches ahead of the consumer."""
    source = str(index)
    batches = _raw_batches(index)
    first = next(batches, None)
    if first is None:
        return
    second = next(batches, None)
    if second is None:  # small: not worth starting processes
        yield parse_batch(first[1], first[0], source, issuer_id, policy)
        return
    loop = asyncio.get_running_loop()
    workers = max(1, min(2, os.cpu_count() or 1))
    # spawn, not fork: the calling process has threads (aiosqlite's).
    with ProcessPoolExecutor(max_workers=workers, mp_context=multiprocessing.get_context("spawn")) as pool:
        pending: deque[asyncio.Future] = deque()
        todo = itertools.chain([first, second], batches)
        try:
            for start, lines in todo:
                pending.append(loop.run_in_executor(pool, parse_batch, lines, start, source, issuer_id, policy))
                if len(pending) > workers:
                    yield await pending.popleft()
            while pending:
                yield await pending.popleft()
        finally:
            for f in pending:
                f.cancel()


def _raw_batches(index: Path):
    """(first line number, raw lines) in BATCH-line batches."""
    with open(index, "rb") as f:
        n = 1
        while True:
            lines = list(itertools.islice(f, BATCH))
            if not lines:
                return
            yield n, lines
            n += len(lines)


def _with_certificate_file(certs_dir: Path, c: NewCert, ca_cert, index: Path) -> NewCert:
    """Add what the certificate file `openssl ca` wrote as <SERIAL>.pem says, if present."""
    from cryptography.hazmat.primitives.serialization import Encoding

    text = f"{c.serial:X}"
    path = certs_dir / f"{'0' if len(text) % 2 else ''}{text}.pem"
    if not path.exists():
        return c
    cert = certmod.split_certificates(path.read_bytes(), str(path))[0]
    if cert.serial_number != c.serial:
        raise MalformedInput(f"{path}: serial {cert.serial_number:X} differs from the one in {index}")
    certmod.verify_issued_by(cert, ca_cert, str(path))
    return c._replace(der=cert.public_bytes(Encoding.DER), subject=cert.subject.rfc4514_string(),
                      dp_url=certmod.crl_dp_url(cert), not_before=cert.not_valid_before_utc,
                      is_ca=certmod.is_ca(cert))
