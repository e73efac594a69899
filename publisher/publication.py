"""What is published right now: the current CRL of every scope, held in memory and
refreshed from the store whenever its change token moves (in this process or another)."""
from __future__ import annotations

import asyncio
import datetime as dt
from dataclasses import dataclass

from .service import Repository
from .store import CrlRecord


@dataclass(frozen=True)
class Published:
    record: CrlRecord
    der: bytes
    issuer_name: str
    # When a retired CA's last CRL stops being served (its nextUpdate); None: never.
    withdrawn_at: dt.datetime | None = None

    def served(self, now: dt.datetime) -> bool:
        return self.withdrawn_at is None or now < self.withdrawn_at


class Publication:
    def __init__(self, repo: Repository) -> None:
        self.repo = repo
        self.token = -1
        self.crls: dict[str, Published] = {}  # by scope name; replaced whole, never mutated
        self._lock = asyncio.Lock()

    async def refresh(self, *, force: bool = False) -> bool:
        """Reload if anything changed; True when it did."""
        async with self._lock:
            token = await self.repo.store.change_token()
            if token == self.token and not force:
                return False
            current = await self.repo.store.current_crls()
            await self.repo.refresh_issuers()
            fresh: dict[str, Published] = {}
            for rec in current:
                withdrawn = self.repo.withdrawn_at(rec.scope.issuer_id, rec)
                old = self.crls.get(rec.scope.name)
                if old is not None and old.record.id == rec.id and old.withdrawn_at == withdrawn:
                    fresh[rec.scope.name] = old
                    continue
                # A CRL of a CA this config lacks (published by a process with a newer
                # config) is still served: what was published stays published.
                issuer_name = await self.repo.issuer_name_by_id(rec.scope.issuer_id)
                fresh[rec.scope.name] = Published(rec, await self.repo.store.crl_der(rec.id), issuer_name, withdrawn)
            self.crls = fresh
            self.token = token
            return True

    def index(self, base_url: str, now: dt.datetime) -> list[dict]:
        out = []
        for name, p in sorted(self.crls.items()):
            if not p.served(now):
                continue
            r = p.record
            out.append({
                "name": name,
                "kind": r.scope.kind.value,
                "issuer": p.issuer_name,
                "distribution_point": r.scope.dp_url or None,
                "crl_number": r.number,
                "this_update": r.this_update.isoformat(),
                "next_update": r.next_update.isoformat(),
                "expired": r.next_update <= now,
                "entries": r.entries,
                "size": r.size,
                "sha256": r.sha256,
                "source": r.source,
                "url": f"{base_url}/crl/{name}.crl",
                "archive": f"{base_url}/crl/archive/{name}/",
            })
        return out
