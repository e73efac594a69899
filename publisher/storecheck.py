"""What `pkirepo check` verifies in the CRL archive, as pure decisions over archived CRLs
read page by page: each CRL's bytes still hash to the SHA-256 recorded for it, its
signature verifies with its issuer's key, and the CRL numbers of each scope only ever grew
in the order the CRLs were recorded."""
from __future__ import annotations

import hashlib
from dataclasses import dataclass, field

from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm

from .store import CrlRecord


@dataclass
class ArchiveCheck:
    """Feed it every archived CRL in id order; `problems` says what is wrong."""

    issuer_keys: dict[int, object]  # issuer id -> public key
    problems: list[str] = field(default_factory=list)
    checked: int = 0
    unverifiable: int = 0
    _last: dict[int, int] = field(default_factory=dict)  # scope id -> last CRL number seen

    def add(self, rec: CrlRecord, der: bytes) -> None:
        self.checked += 1
        what = f"{rec.scope.name} #{rec.number}"
        if hashlib.sha256(der).hexdigest() != rec.sha256:
            self.problems.append(f"{what}: its bytes no longer match the SHA-256 recorded ({rec.sha256})")
        last = self._last.get(rec.scope.id)
        if last is not None and rec.number <= last:
            self.problems.append(f"{what}: recorded after #{last}: CRL numbers must strictly increase")
        self._last[rec.scope.id] = max(rec.number, last or 0)
        key = self.issuer_keys.get(rec.scope.issuer_id)
        try:
            crl = x509.load_der_x509_crl(der)
        except ValueError as e:
            self.problems.append(f"{what}: not a CRL ({e})")
            return
        if key is None:
            self.problems.append(f"{what}: its issuer is not in the store")
            return
        try:
            if not crl.is_signature_valid(key):
                self.problems.append(f"{what}: the signature does not verify with its issuer's key")
        except (UnsupportedAlgorithm, TypeError, ValueError):
            # SM2 and other algorithms cryptography does not verify: counted, not failed.
            self.unverifiable += 1
