"""LDAP at scale (not a test): `pkirepo serve` on a large demo repository, in this process so
that the event loop's lag can be watched from inside.

    pkirepo demo init DIR --subscribers 100000          # once, about a minute or two
    .venv/bin/python -m bench.ldap_scale DIR [--searches 300] [--burst 1000]

Reports: when the LDAP port answers after start, search latency by mail (subtree from the
suffix) and by DN (base), never-repeated, from an ldap3 client in another process; how long
until a revocation (made by another process, as `pkirepo revoke` would) is gone from LDAP,
for one and for a burst of `--burst` revocations; the worst event-loop lag (a task sleeping
10 ms, recording how late it wakes) in each phase; the process's RSS.  The revocations are
real: run it on a throw-away copy.
"""
from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import statistics
import subprocess
import sys
import time
from pathlib import Path

ANON_BIND = bytes.fromhex("300c020101600702010304008000")

CLIENT = r"""
import json, sys, time
import ldap3
port, suffix, mails, dns = json.loads(sys.stdin.read())
c = ldap3.Connection(ldap3.Server("127.0.0.1", port=port), auto_bind=True)
out = {}
for label, items in (("mail", mails), ("dn", dns)):
    times, found = [], 0
    for x in items:
        t = time.perf_counter()
        if label == "mail":
            c.search(suffix, f"(mail={x})", attributes=["cn"])
        else:
            c.search(x, "(objectClass=*)", search_scope=ldap3.BASE, attributes=["cn"])
        times.append(time.perf_counter() - t)
        found += len(c.entries)
    out[label] = (times, found)
print(json.dumps(out))
"""

REVOKER = r"""
import asyncio, json, sys, time
from publisher.cli import Context
from publisher.store import Action
from publisher.crl import Reason
config, issuer, serials = json.loads(sys.stdin.read())
class A: pass
a = A(); a.config = config
async def main():
    async with Context(a) as repo:
        for s in serials:
            await repo.change_status(issuer, s, Action.REVOKE, reason=Reason.keyCompromise)
    print(time.time(), flush=True)
asyncio.run(main())
"""


class LagMonitor:
    def __init__(self) -> None:
        self.samples: list[tuple[float, float]] = []

    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            t = loop.time()
            await asyncio.sleep(0.01)
            self.samples.append((t, loop.time() - t - 0.01))

    def worst(self, since: float, until: float | None = None) -> float:
        lags = [lag for t, lag in self.samples if t >= since and (until is None or t <= until)]
        return max(lags, default=0.0)


def rss_mb() -> tuple[float, float]:
    fields = dict(line.split(":", 1) for line in Path("/proc/self/status").read_text().splitlines() if ":" in line)
    return int(fields["VmRSS"].split()[0]) / 1024, int(fields["VmHWM"].split()[0]) / 1024


async def answers(port: int) -> bool:
    try:
        r, w = await asyncio.open_connection("127.0.0.1", port)
    except OSError:
        return False
    try:
        w.write(ANON_BIND)
        return bool(await asyncio.wait_for(r.read(64), 5))
    finally:
        w.close()


def present(port: int, dn: str) -> bool:
    import ldap3

    c = ldap3.Connection(ldap3.Server("127.0.0.1", port=port), auto_bind=True)
    try:
        c.search(dn, "(objectClass=*)", search_scope=ldap3.BASE, attributes=["1.1"])
        return bool(c.entries)
    finally:
        c.unbind()


async def until_gone(port: int, dns: list[str], limit: float = 120.0) -> float:
    """time.time() when none of dns is found any more."""
    deadline = time.monotonic() + limit
    left = list(dns)
    while left and time.monotonic() < deadline:
        left = [dn for dn in left if await asyncio.to_thread(present, port, dn)]
        if left:
            await asyncio.sleep(0.02)
    if left:
        raise RuntimeError(f"{len(left)} revoked entries still in LDAP after {limit} s")
    return time.time()


async def revoke(config: Path, issuer: str, serials: list[int]) -> float:
    p = await asyncio.create_subprocess_exec(sys.executable, "-c", REVOKER, stdin=subprocess.PIPE,
                                             stdout=subprocess.PIPE)
    out, _ = await p.communicate(json.dumps([str(config), issuer, serials]).encode())
    if p.returncode:
        raise RuntimeError("revoking failed")
    return float(out.split()[-1])


async def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("demo", type=Path)
    ap.add_argument("--searches", type=int, default=300)
    ap.add_argument("--burst", type=int, default=1000)
    ap.add_argument("--issuer", default="eCertCA2-17")
    ap.add_argument("--slow", type=float, default=0,
                    help="log every loop callback that runs longer than this many seconds (asyncio debug mode)")
    args = ap.parse_args()
    if args.slow:
        import logging
        logging.basicConfig(level=logging.WARNING)
        asyncio.get_running_loop().set_debug(True)
        asyncio.get_running_loop().slow_callback_duration = args.slow

    from ldap.listener import install_reactor
    from ldap.names import certificate_names
    from publisher.root import load_settings
    from publisher.server import serve
    from publisher.sqlite_store import SQLiteStore
    from publisher.store import Status, serial_hex

    install_reactor(asyncio.get_running_loop())
    config = args.demo / "pkirepo.toml"
    settings = load_settings(config)
    n_sample = 2 * args.searches + 1 + args.burst
    async with SQLiteStore(settings.store_path, create=False) as store:
        issuer = next(i for i in await store.issuers() if i.name == args.issuer)
        certs = []
        after = None
        while len(certs) < 20 * n_sample:
            page = await store.list_certificates(issuer_id=issuer.id, status=Status.GOOD, after=after, limit=5000)
            certs += [c for c in page if not c.is_ca and c.der]
            if len(page) < 5000:
                break
            after = (page[-1].issuer_id, page[-1].serial)
        total = len(certs)
    random.seed(1)
    sample = random.sample(certs, n_sample)
    del certs
    mails = [certificate_names(c.der)[1][0] for c in sample[:args.searches]]
    dn_certs = sample[args.searches:2 * args.searches]
    one = sample[2 * args.searches]
    burst = sample[2 * args.searches + 1:]

    import logging

    presigned = asyncio.Event()

    class Seen(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            if "pre-signed" in record.getMessage():
                presigned.set()

    logging.getLogger("pkirepo.ocsp").addHandler(Seen())
    logging.getLogger("pkirepo.ocsp").setLevel(logging.INFO)
    monitor = LagMonitor()
    mon = asyncio.create_task(monitor.run())
    ldap_port = settings.ldap.host_port[1]
    loop = asyncio.get_running_loop()
    t0 = loop.time()
    server = asyncio.create_task(serve(settings, http=settings.http.listen))
    while not await answers(ldap_port):
        if server.done():
            server.result()
        await asyncio.sleep(0.005)
    t_ldap = loop.time() - t0
    print(f"LDAP port answering {t_ldap:.2f} s after start ({total}+ certificates of {args.issuer} sampled)")
    # Let start-up work settle (OCSP pre-signing, the name index): measured on its own.
    async with SQLiteStore(settings.store_path, create=False) as store:
        while True:
            upto, last = await store.name_index_position()
            if upto >= last:
                break
            await asyncio.sleep(0.5)
    t_indexed = loop.time() - t0
    print(f"name index complete {t_indexed:.1f} s after start; worst loop lag before the port answered "
          f"{monitor.worst(t0, t0 + t_ldap) * 1000:.0f} ms, after {monitor.worst(t0 + t_ldap) * 1000:.0f} ms")
    # The OCSP responder pre-signs every certificate at start, on the same loop: measured
    # above with the rest of start-up, waited for here.
    try:
        await asyncio.wait_for(presigned.wait(), 600)
    except asyncio.TimeoutError:
        print("warning: OCSP pre-signing not seen finished; measuring anyway")
    print(f"OCSP pre-signing done {loop.time() - t0:.1f} s after start")
    await asyncio.sleep(3)  # the refresh after the last batch

    import ldap3

    def ca_entry_dn() -> str:
        c = ldap3.Connection(ldap3.Server("127.0.0.1", port=ldap_port), auto_bind=True)
        c.search(settings.ldap.layout.base or "c=HK", "(objectClass=pkiCA)", attributes=["cACertificate;binary"])
        from cryptography import x509
        for e in c.entries:
            der = e["cACertificate;binary"].raw_values[0]
            if x509.load_der_x509_certificate(der).subject.public_bytes() == issuer.subject_der:
                return e.entry_dn
        raise RuntimeError("CA entry not found")

    ca_dn = await asyncio.to_thread(ca_entry_dn)
    suffix = "c=HK"
    dns = [f"uid={serial_hex(c.serial)},{ca_dn}" for c in dn_certs]
    t_search = loop.time()
    p = await asyncio.create_subprocess_exec(sys.executable, "-c", CLIENT, stdin=subprocess.PIPE,
                                             stdout=subprocess.PIPE)
    out, _ = await p.communicate(json.dumps([ldap_port, suffix, mails, dns]).encode())
    res = json.loads(out)
    for label in ("mail", "dn"):
        times, found = res[label]
        print(f"search by {label:<4}: median {statistics.median(times) * 1000:.2f} ms, "
              f"max {max(times) * 1000:.2f} ms, {len(times)} searches, {found} entries found")
    print(f"worst loop lag during searches {monitor.worst(t_search) * 1000:.0f} ms")

    for label, group in (("1 revocation", [one]), (f"{len(burst)} revocations", burst)):
        t_start = loop.time()
        wall_start = time.time()
        done = await revoke(config, args.issuer, [c.serial for c in group])
        gone = await until_gone(ldap_port, [f"uid={serial_hex(c.serial)},{ca_dn}" for c in group[-5:]])
        if len(group) > 1:
            # every one of them, now that the last ones are gone
            check = random.sample(group, min(50, len(group)))
            assert not any([await asyncio.to_thread(present, ldap_port, f"uid={serial_hex(c.serial)},{ca_dn}")
                            for c in check])
        await asyncio.sleep(3)  # the supplementary CRL and pre-signing that follow
        print(f"{label}: committed after {done - wall_start:.2f} s, gone from LDAP {gone - done:.2f} s after "
              f"the last commit; worst loop lag from the first revocation on {monitor.worst(t_start) * 1000:.0f} ms")
    rss, hwm = rss_mb()
    print(f"RSS {rss:.0f} MB (peak {hwm:.0f} MB), this process: server + sampling")
    mon.cancel()
    os.kill(os.getpid(), 2)  # SIGINT: serve() shuts down in order
    await server


if __name__ == "__main__":
    asyncio.run(main())
