"""Importing an `openssl ca` database into the store, with progress."""
from __future__ import annotations

from pathlib import Path
from typing import Callable


from . import certs as certmod
from . import crl as crlmod
from .errors import MalformedInput, NotFound
from .openssl_index import read_index
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
) -> tuple[int, int]:
    """Import every line of index.txt for the configured CA whose certificate is `ca_file`.

    All lines are parsed and checked before anything is written, then written in one
    transaction: a bad line anywhere imports nothing."""
    try:
        ca_cert = certmod.split_certificates(ca_file.read_bytes(), str(ca_file))[0]
    except OSError as e:
        raise MalformedInput(f"{ca_file}: cannot read: {e.strerror}") from None
    ca = next((c for c in repo.settings.cas if repo.issuer_certificate(c.name) == ca_cert), None)
    if ca is None:
        raise NotFound(f"{ca_file}: this CA certificate is not configured under [[ca]]")
    issuer = repo.issuer(ca.name)
    policy = repo.settings.crl.reason_policy
    try:
        total = sum(1 for line in index.open("rb") if line.strip())
    except OSError as e:
        raise MalformedInput(f"{index}: cannot read: {e.strerror}") from None
    new: list[NewCert] = []
    seen: set[int] = set()
    revoked = 0
    for n, line in enumerate(read_index(index), 1):
        if line.serial in seen:
            raise MalformedInput(f"{index}:{line.line_no}: serial {line.serial:X} appears twice")
        seen.add(line.serial)
        der = subject = dp_url = not_before = None
        is_ca = False
        if certs_dir is not None:
            path = certs_dir / f"{line.serial:02X}.pem"
            if len(f"{line.serial:X}") % 2:
                path = certs_dir / f"0{line.serial:X}.pem"
            if path.exists():
                cert = certmod.split_certificates(path.read_bytes(), str(path))[0]
                if cert.serial_number != line.serial:
                    raise MalformedInput(f"{path}: serial {cert.serial_number:X} differs from {index}:{line.line_no}")
                certmod.verify_issued_by(cert, ca_cert, str(path))
                from cryptography.hazmat.primitives.serialization import Encoding

                der = cert.public_bytes(Encoding.DER)
                subject = cert.subject.rfc4514_string()
                dp_url = certmod.crl_dp_url(cert)
                not_before = cert.not_valid_before_utc
                is_ca = certmod.is_ca(cert)
        status = Status.GOOD
        entry = None
        if line.status == "R":
            status = Status.HOLD if line.reason is crlmod.Reason.certificateHold else Status.REVOKED
            entry = crlmod.encode_entry(line.serial, line.revoked_at, line.reason, line.invalidity, policy)
            revoked += 1
        new.append(NewCert(
            issuer_id=issuer.id, serial=line.serial, der=der, subject=subject or line.subject,
            not_before=not_before, not_after=line.expiry, dp_url=dp_url, is_ca=is_ca, status=status,
            reason=line.reason, revoked_at=line.revoked_at, invalidity_at=line.invalidity, entry=entry))
        if progress and (n % 10_000 == 0 or n == total):
            progress(n, total)
    if not new:
        raise MalformedInput(f"{index}: no certificates in the index")
    await repo.store.add_certificates(new, at=repo.clock.now())
    await repo.ensure_scopes(ca)
    return len(new), revoked


