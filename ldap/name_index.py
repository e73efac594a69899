"""Keeping the store's name index (cn, mail of every subscriber certificate) up to date.

The index is filled from the certificates' DER, in id order from where it last stopped (the
store records the position), a small batch per store write with a return to the event loop
between batches: parsing a certificate costs tens of microseconds, so a batch holds the loop
for a few milliseconds.  A new store (or one from before the index) is read whole once, in
the background after the LDAP port opens; later only the certificates added since.
"""
from __future__ import annotations

import asyncio

from publisher.store import Store

from .names import index_rows

PAGE = 500  # certificates per store read and write
BATCH = 100  # certificates parsed between two returns to the loop


async def catch_up(store: Store, *, max_certs: int, page: int = PAGE, batch: int = BATCH) -> bool:
    """Index at most about `max_certs` certificates not yet indexed; True when none is left."""
    upto, last = await store.name_index_position()
    done = 0
    while upto < last and done < max_certs:
        certs = await store.certificates_by_id(after_id=upto, limit=page)
        rows: list[tuple[str, str, int]] = []
        for k in range(0, len(certs), batch):
            for cert in certs[k:k + batch]:
                rows += index_rows(cert)
            await asyncio.sleep(0)
        # Certificates committed after `last` was read wait for the next call.
        upto = certs[-1].id if certs else last
        await store.add_cert_names(rows, upto=upto)
        done += len(certs)
    return upto >= last
