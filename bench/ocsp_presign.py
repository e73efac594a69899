"""OCSP pre-signing at scale: start-up, first pass, memory, store size and event-loop lag.

    python -m bench.ocsp_presign DIR [--port P] [--timeout S]

DIR is a demo made by `pkirepo demo init DIR --subscribers N` (its store is used as it is:
copy it first to measure a first pass again). `pkirepo serve` runs in this process, with a
loop-lag probe beside it: a task that sleeps 10 ms and records how late it wakes, i.e. the
longest synchronous step of everything on the loop. Prints:
- seconds until /healthz answers and until /healthz/ocsp says pre-signing is complete;
- the worst loop lag during the first pass, and while one `pkirepo revoke` is followed;
- seconds from the revoke's exit until OCSP answers "revoked";
- RSS of the serving process (and of its signing workers), and the size of
  `ocsp_responses` per stored answer (SQLite's dbstat, table and indexes).
Not a test: nothing asserts.
"""
from __future__ import annotations

import argparse
import asyncio
import gc
import os
import sqlite3
import sys
import time
from pathlib import Path

import aiohttp
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.x509 import ocsp

BIN = Path(sys.executable).parent


class LagProbe:
    def __init__(self) -> None:
        self.max = 0.0

    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            t = loop.time()
            await asyncio.sleep(0.010)
            self.max = max(self.max, loop.time() - t - 0.010)

    def take(self) -> float:
        m, self.max = self.max, 0.0
        return m


class GcPauses:
    """The longest garbage collection per generation: a full one holds the loop too."""

    def __init__(self) -> None:
        self.longest = [0.0, 0.0, 0.0]
        self._start = 0.0
        gc.callbacks.append(self._cb)

    def _cb(self, phase: str, info: dict) -> None:
        if phase == "start":
            self._start = time.perf_counter()
        else:
            g = info["generation"]
            self.longest[g] = max(self.longest[g], time.perf_counter() - self._start)

    def take(self) -> str:
        text = ", ".join(f"gen{g} {t * 1000:.0f} ms" for g, t in enumerate(self.longest))
        self.longest = [0.0, 0.0, 0.0]
        return text


def rss_kb(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def children(pid: int) -> list[int]:
    """The signing worker processes (not multiprocessing's resource tracker)."""
    try:
        pids = [int(p) for p in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    except OSError:
        return []
    return [p for p in pids if b"spawn_main" in Path(f"/proc/{p}/cmdline").read_bytes()]


def table_bytes(store: Path) -> tuple[int, int]:
    with sqlite3.connect(f"file:{store}?mode=ro", uri=True) as db:
        size = db.execute("SELECT sum(pgsize) FROM dbstat WHERE name IN ('ocsp_responses', 'ocsp_responses_due')"
                          ).fetchone()[0] or 0
        rows = db.execute("SELECT count(*) FROM ocsp_responses").fetchone()[0]
    return size, rows


async def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("dir", type=Path)
    ap.add_argument("--port", type=int, default=18080)
    ap.add_argument("--timeout", type=float, default=1800)
    ap.add_argument("--slow", type=float, default=0,
                    help="asyncio debug mode: log every callback longer than this many seconds")
    args = ap.parse_args()
    if args.slow:
        import logging

        logging.basicConfig(level=logging.WARNING)
        asyncio.get_running_loop().set_debug(True)
        asyncio.get_running_loop().slow_callback_duration = args.slow
    demo = args.dir.resolve()
    os.chdir(demo)
    from ldap.listener import install_reactor  # noqa: F401  (serve installs it)
    from publisher.root import load_settings
    from publisher.server import serve

    settings = load_settings(demo / "pkirepo.toml")
    pki = demo / "pki"
    ca = x509.load_pem_x509_certificate((pki / "ca.pem").read_bytes())
    # A certificate still good, chosen now, and the `pkirepo revoke` for it forked now, while
    # this process is small: forking the grown server later would itself stall the loop.
    with sqlite3.connect(f"file:{demo / 'pkirepo.sqlite'}?mode=ro", uri=True) as db:
        key = db.execute("SELECT c.serial FROM certificates c JOIN issuers i ON i.id = c.issuer_id"
                         " WHERE i.name = 'eCertCA2-17' AND c.status = 0 ORDER BY random() LIMIT 1").fetchone()[0]
    serial = int.from_bytes(key[1:], "big")
    revoker = await asyncio.create_subprocess_exec(
        "sh", "-c", 'read go && exec "$@"', "revoke", str(BIN / "pkirepo"), "revoke", "--config",
        str(demo / "pkirepo.toml"), "--issuer", "eCertCA2-17", "--serial", f"{serial:X}", "--reason", "superseded",
        stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE)
    probe = LagProbe()
    pauses = GcPauses()
    probe_task = asyncio.create_task(probe.run())
    t0 = time.monotonic()
    server = asyncio.create_task(serve(settings, http=("127.0.0.1", args.port), ldap=""))
    base = f"http://127.0.0.1:{args.port}"
    ca_der = ca.public_bytes(serialization.Encoding.DER)
    from ocsp.issuers import issuer_hashes
    from ocsp.request import HashAlgorithm

    h = issuer_hashes(ca_der, HashAlgorithm.SHA1)
    req = ocsp.OCSPRequestBuilder().add_certificate_by_hash(h.name_hash, h.key_hash, serial, hashes.SHA1()).build(
        ).public_bytes(serialization.Encoding.DER)
    async with aiohttp.ClientSession() as http:
        t_health = None
        while t_health is None:
            if server.done():
                return server.result()
            try:
                async with http.get(f"{base}/healthz") as r:
                    if r.status == 200:
                        t_health = time.monotonic() - t0
            except aiohttp.ClientError:
                await asyncio.sleep(0.05)
        print(f"/healthz answers after          {t_health:8.1f} s", flush=True)
        print(f"worst loop lag before listening {probe.take() * 1000:8.1f} ms (start-up: store, CRLs)", flush=True)
        pauses.take()
        line = ""
        while time.monotonic() - t0 < args.timeout:
            async with http.get(f"{base}/healthz/ocsp") as r:
                text = await r.text()
            line = text.splitlines()[-1]
            if "complete" in line:
                break
            await asyncio.sleep(0.5)
        t_complete = time.monotonic() - t0
        first_lag = probe.take()
        print(f"pre-signing complete after      {t_complete:8.1f} s   ({line})", flush=True)
        print(f"worst loop lag, first pass      {first_lag * 1000:8.1f} ms"
              f" (longest garbage collections: {pauses.take()})", flush=True)
        pid = os.getpid()
        workers = children(pid)
        print(f"RSS serving process             {rss_kb(pid) / 1024:8.1f} MB; signing workers:"
              f" {', '.join(f'{rss_kb(w) / 1024:.0f} MB' for w in workers) or 'none'}", flush=True)
        size, rows = await asyncio.to_thread(table_bytes, demo / "pkirepo.sqlite")
        print(f"ocsp_responses (+ index)        {size / 1e6:8.1f} MB for {rows} answers:"
              f" {size / max(rows, 1):.0f} bytes per answer", flush=True)
        # Follow one revocation made by another process.
        await asyncio.sleep(0.1)
        probe.take()
        proc = revoker
        _, err = await proc.communicate(b"go\n")
        t_rev = time.monotonic()
        if proc.returncode != 0:
            print(f"revoke failed: {err.decode()}", flush=True)
        status = None
        while time.monotonic() - t_rev < 10:
            async with http.post(f"{base}/ocsp", data=req,
                                 headers={"Content-Type": "application/ocsp-request"}) as r:
                status = ocsp.load_der_ocsp_response(await r.read()).certificate_status
            if status is ocsp.OCSPCertStatus.REVOKED:
                break
            await asyncio.sleep(0.01)
        seen = time.monotonic() - t_rev
        await asyncio.sleep(2)  # the pre-signer re-signs the revoked certificate meanwhile
        print(f"revoked in OCSP after           {seen * 1000:8.1f} ms ({status})", flush=True)
        print(f"worst loop lag, following it    {probe.take() * 1000:8.1f} ms"
              f" (longest garbage collections: {pauses.take()})", flush=True)
    server.cancel()
    try:
        await server
    except asyncio.CancelledError:
        pass
    probe_task.cancel()
    left = [w for w in workers if Path(f"/proc/{w}").exists()]
    print(f"signing workers left after stop: {left or 'none'}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
