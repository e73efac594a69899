"""Keeping the store's name index (cn, mail of every subscriber certificate) up to date.

The index is filled from the certificates' DER, in id order from where it last stopped (the
store records the position), a page per store write. Parsing a certificate costs tens of
microseconds, so a page is parsed in a thread: a whole page on the loop held it for tens of
milliseconds at a time while a million certificates were read (seen by the stall watch), and
in a thread the interpreter hands the loop its turn every few milliseconds. A new store (or
one from before the index) is read whole once, in the background after the LDAP port opens;
later only the certificates added since.
"""
from __future__ import annotations

import asyncio
from typing import Sequence

from publisher.store import CertRecord, Store

from .names import index_rows

PAGE = 200  # certificates per store read and write: their records are made on the loop


def page_rows(certs: Sequence[CertRecord]) -> list[tuple[str, str, int]]:
    rows: list[tuple[str, str, int]] = []
    for cert in certs:
        rows += index_rows(cert)
    return rows


async def catch_up(store: Store, *, max_certs: int, page: int = PAGE) -> bool:
    """Index at most about `max_certs` certificates not yet indexed; True when none is left."""
    upto, last = await store.name_index_position()
    done = 0
    while upto < last and done < max_certs:
        certs = await store.certificates_by_id(after_id=upto, limit=page)
        rows = await asyncio.to_thread(page_rows, certs)
        # Certificates committed after `last` was read wait for the next call.
        upto = certs[-1].id if certs else last
        await store.add_cert_names(rows, upto=upto)
        done += len(certs)
    return upto >= last
