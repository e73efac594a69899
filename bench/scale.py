"""Scale benchmark: a store of N certificates behind a real `pkirepo serve` on 127.0.0.1.

    python -m bench.scale [--subscribers N] [--issuing-key ec|rsa] [--keep DIR] [--reuse DIR]

1. `pkirepo demo init` makes N subscriber certificates (default 1,000,000), one in 10
   revoked or held, over 3 partitions (timed, with its peak RSS and CPU seconds; progress
   shows as it goes). `--reuse DIR` skips this and uses a demo made earlier.
2. The store's size by table (SQLite's dbstat).
3. `pkirepo serve` as a subprocess; a thread polls /healthz every 10 ms throughout, and the
   server's own lag probe (/healthz/loop) is read after every phase. Measured: the time
   from start until HTTP, OCSP (a signed answer) and LDAP (a search) all answer; until
   pre-signing covers every certificate (when /healthz/ocsp reports coverage in JSON);
   peak and steady RSS (/proc); a burst of 1,000 revocations through the Repository API
   in this process (as `pkirepo revoke` would, one transaction each), the supplementary
   CRL they cause and the LDAP directory following them; a steady period (the OCSP
   refresh cycle runs in it) with the server's average CPU use; the time until one
   revocation shows in OCSP and in LDAP; LDAP search latency by mail and by DN.
4. With the server stopped: one full CRL issued through `Repository.issue`, timed.

On PostgreSQL, beside SQLite in the same run:

    python -m bench.scale --pg-server [--subscribers N] ...
    python -m bench.scale --store postgresql://user@host/db --store-password-file FILE ...

5. Right after the build, `pkirepo store copy` moves the SQLite store into the (empty)
   PostgreSQL database, timed; `--pg-server` first starts a throwaway server of Debian's
   postgresql in a temporary directory, as tests/pg_testlib.py does (fsync off there: the
   figures are the store's, not the disk's). Steps 2 to 4 then run on SQLite and again on a
   node whose store.url is the copy (its own publication directory), and both columns print
   side by side.
6. OCSP throughput, one node against two: `pkirepo serve` processes on the one database,
   each with its own ports and publication directory (LDAP off), answering the pre-signed
   path (no nonce) to ab with the load split between them. Until leadership across nodes
   exists both nodes also run the background work (duplicated pre-signing, CRL numbers that
   conflict harmlessly); the timed part is read-only, after both report pre-signing complete.

Not a test: nothing asserts; it prints a table of figure / measured / target. Every loop is
bounded; only 127.0.0.1; the server is killed on exit and on Ctrl-C.
"""
from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import shutil
import signal
import socket
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
PKIREPO = str(Path(sys.executable).parent / "pkirepo")
BURST = 1000


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def http_get(url: str, timeout: float = 5.0) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()



def stop_group(proc: subprocess.Popen) -> None:
    """SIGTERM to a server's process group (its signing processes too), SIGKILL after 60 s."""
    os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout=60)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()

class Poller(threading.Thread):
    """GET /healthz every 10 ms; the worst latency per phase. Bounded by `stop()`."""

    def __init__(self, url: str) -> None:
        super().__init__(daemon=True)
        self.url = url
        self.phase = "start"
        self.worst: dict[str, float] = {}
        self.failures: dict[str, int] = {}
        self._stop_flag = threading.Event()

    def run(self) -> None:
        while not self._stop_flag.is_set():
            phase = self.phase
            t = time.monotonic()
            try:
                http_get(self.url, timeout=10)
                lat = time.monotonic() - t
                self.worst[phase] = max(self.worst.get(phase, 0.0), lat)
            except OSError:
                self.failures[phase] = self.failures.get(phase, 0) + 1
            self._stop_flag.wait(0.01)

    def stop(self) -> None:
        self._stop_flag.set()
        self.join(timeout=15)


def proc_status(pid: int) -> dict[str, int]:
    out = {}
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(("VmRSS:", "VmHWM:")):
                out[line.split(":")[0]] = int(line.split()[1]) * 1024
    except OSError:
        pass
    return out


def process_tree(pid: int) -> list[int]:
    """The server and its descendants (the OCSP signing processes)."""
    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            ppid = int(stat.read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, ValueError, IndexError):
            continue
        children.setdefault(ppid, []).append(int(stat.parent.name))
    tree, todo = [], [pid]
    while todo:
        p = todo.pop()
        tree.append(p)
        todo.extend(children.get(p, ()))
    return tree


def cpu_seconds(pid: int) -> float:
    """CPU seconds of the server and its signing processes, so far."""
    total = 0
    for p in process_tree(pid):
        try:
            fields = Path(f"/proc/{p}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += int(fields[11]) + int(fields[12])
    return total / os.sysconf("SC_CLK_TCK")


def tree_rss(pid: int) -> int:
    """Resident memory of the server and its signing processes together."""
    return sum(proc_status(p).get("VmRSS", 0) for p in process_tree(pid))


def store_sizes(path: Path) -> list[tuple[str, int]]:
    con = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        rows = con.execute("SELECT name, sum(pgsize) FROM dbstat GROUP BY name ORDER BY 2 DESC").fetchall()
    except sqlite3.OperationalError:  # SQLite built without dbstat
        rows = [("(whole file)", path.stat().st_size)]
    finally:
        con.close()
    return rows


def mb(n: float) -> str:
    return f"{n / 1e6:,.0f} MB"


def ms(seconds: float | None) -> str:
    return "n/a" if seconds is None else f"{seconds * 1000:.1f} ms"


def build(directory: Path, n: int, key: str, http: str, ldap: str) -> dict:
    print(f"building a demo of {n:,} subscribers in {directory} (issuing key {key}) ...", flush=True)
    t = time.monotonic()
    proc = subprocess.Popen([PKIREPO, "demo", "init", str(directory), "--subscribers", str(n), "--issuing-key", key,
                             "--revoke-every", "10", "--http", http, "--ldap", ldap], stdout=subprocess.DEVNULL)
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode:
        raise SystemExit(f"demo init failed (exit {proc.returncode})")
    return {"wall": time.monotonic() - t, "rss": usage.ru_maxrss * 1024, "cpu": usage.ru_utime + usage.ru_stime}


class Bench:
    def __init__(self, directory: Path, args, config: Path | None = None, db: "PgTarget | None" = None) -> None:
        self.dir = directory
        self.args = args
        self.config = config or directory / "pkirepo.toml"
        self.db = db
        text = self.config.read_text()
        self.http_port = free_port()
        self.ldap_port = free_port()
        self.url = f"http://127.0.0.1:{self.http_port}"
        # Supplementary CRLs soon after a change, so that the burst's CRL is seen within the run.
        self.config.write_text(re.sub(r"supplementary_delay_seconds = \d+", "supplementary_delay_seconds = 5", text))
        self.rows: list[tuple[str, str, str]] = []
        self.proc: subprocess.Popen | None = None

    def row(self, figure: str, measured: str, target: str = "") -> None:
        self.rows.append((figure, measured, target))
        print(f"  {figure}: {measured}" + (f"   (target {target})" if target else ""), flush=True)

    # The server

    def start(self) -> float:
        self.log = open(self.dir / "bench-server.log", "w")
        self.t0 = time.monotonic()
        self.proc = subprocess.Popen(
            [PKIREPO, "--config", str(self.config), "serve", "--http", f"127.0.0.1:{self.http_port}",
             "--ldap", f"127.0.0.1:{self.ldap_port}", "--admin", f"127.0.0.1:{free_port()}"],
            stdout=subprocess.DEVNULL, stderr=self.log, start_new_session=True)
        return self.t0

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            stop_group(self.proc)
        self.proc = None

    def loop_lag(self) -> dict:
        status, body = http_get(f"{self.url}/healthz/loop")
        return json.loads(body) if status == 200 else {}

    # Clients

    def ocsp_request(self, cert_der: bytes) -> bytes:
        from cryptography import x509
        from cryptography.hazmat.primitives import hashes
        from cryptography.hazmat.primitives.serialization import Encoding
        from cryptography.x509 import ocsp
        cert = x509.load_der_x509_certificate(cert_der)
        return ocsp.OCSPRequestBuilder().add_certificate(cert, self.ca, hashes.SHA1()).build().public_bytes(Encoding.DER)

    def ocsp_status(self, req: bytes) -> str | None:
        from cryptography.x509 import ocsp
        r = urllib.request.Request(f"{self.url}/ocsp", data=req, headers={"Content-Type": "application/ocsp-request"})
        try:
            with urllib.request.urlopen(r, timeout=10) as resp:
                answer = ocsp.load_der_ocsp_response(resp.read())
        except (OSError, ValueError):
            return None
        if answer.response_status != ocsp.OCSPResponseStatus.SUCCESSFUL:
            return None
        return answer.certificate_status.name.lower()

    def ldap(self):
        import ldap3
        server = ldap3.Server("127.0.0.1", port=self.ldap_port, connect_timeout=5)
        return ldap3.Connection(server, auto_bind=True, receive_timeout=30)

    # Phases

    async def run(self) -> None:
        from cryptography import x509

        self.ca = x509.load_pem_x509_certificate((self.dir / "pki" / "ca.pem").read_bytes())
        sizes = store_sizes(self.dir / "pkirepo.sqlite") if self.db is None else await self.db.sizes()
        total = sum(s for _, s in sizes)
        self.row("store size", mb(total), "<= 4 GB at 1M")
        for name, size in sizes[:5]:
            self.row(f"  of which {name}", mb(size))

        # Samples from the store: good certificates (not expired) for OCSP/LDAP probes.
        from publisher.root import load_settings, open_backend
        from publisher.service import Repository, load_signers
        from publisher.crl import Reason
        from publisher.store import Action, Status
        from publisher.clock import SystemClock
        settings = load_settings(self.config)
        backend = await open_backend(settings)  # SQLite, or the PostgreSQL copy by store.url
        store = backend.store
        repo = Repository(settings, store=store, signers={}, clock=SystemClock())
        await repo.sync_issuers()
        ca_id = repo.issuer("eCertCA2-17").id
        now = SystemClock().now()
        good = [c for c in await store.list_certificates(issuer_id=ca_id, status=Status.GOOD, limit=BURST + 600)
                if c.not_after is None or c.not_after > now]
        burst, probes = good[:BURST], good[BURST:]
        mail_re = re.compile(r"1\.2\.840\.113549\.1\.9\.1=([^,]+)")

        self.start()
        poller = Poller(f"{self.url}/healthz")
        ready: dict[str, float] = {}
        probe_req = self.ocsp_request(probes[0].der)
        deadline = time.monotonic() + self.args.timeout
        while len(ready) < 3 and time.monotonic() < deadline and self.proc.poll() is None:
            t = time.monotonic() - self.t0
            if "http" not in ready:
                try:
                    if http_get(f"{self.url}/healthz", timeout=2)[0] == 200:
                        ready["http"] = t
                        poller.start()
                except OSError:
                    pass
            if "ocsp" not in ready and "http" in ready and self.ocsp_status(probe_req) is not None:
                ready["ocsp"] = time.monotonic() - self.t0
            if "ldap" not in ready:
                try:
                    c = self.ldap()
                    c.search("", "(objectClass=*)", search_scope="BASE", attributes=["namingContexts"])
                    c.unbind()
                    ready["ldap"] = time.monotonic() - self.t0
                except Exception:  # noqa: BLE001 - not listening yet
                    pass
            await asyncio.sleep(0.05)
        if self.proc.poll() is not None:
            raise SystemExit(f"server exited ({self.proc.returncode}); see {self.dir / 'bench-server.log'}")
        for part in ("http", "ocsp", "ldap"):
            self.row(f"start until {part.upper()} answers", f"{ready.get(part, float('nan')):.1f} s", "<= 5 s")
        all_ready = max(ready.values()) if len(ready) == 3 else None
        lag = self.loop_lag()
        self.row("loop lag during start-up (probe max / p99)",
                 f"{lag.get('max_ms', 'n/a')} / {lag.get('p99_ms', 'n/a')} ms", "<= 50 ms")

        # Pre-signing coverage, when /healthz/ocsp reports it.
        covered_at = None
        for _ in range(int(self.args.timeout / 0.5)):
            status, body = http_get(f"{self.url}/healthz/ocsp")
            # "pre-signing: complete, 200004 of 200004 answers stored, backlog 0"
            m = re.search(rb"pre-signing: ([a-z ]+), (\d+) of (\d+) answers stored, backlog (\d+)", body)
            if m is not None:
                state, stored, wanted = m.group(1), int(m.group(2)), int(m.group(3))
                print(f"  pre-signing: {stored:,} of {wanted:,} answers "
                      f"({time.monotonic() - self.t0:.0f} s)", end="\r", flush=True)
                if state == b"complete":
                    covered_at = time.monotonic() - self.t0
                    print()
                    break
            await asyncio.sleep(0.5)
        self.row("start until pre-signing covers every certificate",
                 "n/a (no coverage in /healthz/ocsp)" if covered_at is None else f"{covered_at:.1f} s",
                 "within the refresh window")
        st = proc_status(self.proc.pid)
        self.row("server RSS after start (peak so far / now)", f"{mb(st.get('VmHWM', 0))} / {mb(st.get('VmRSS', 0))}")

        # A burst of revocations, the supplementary CRL and the directory following them.
        poller.phase = "burst"
        full_before = self.crl_entries().get("eCertCA2-17CRL1", 0)
        t = time.monotonic()
        for c in burst:
            await repo.change_status("eCertCA2-17", c.serial, Action.REVOKE, reason=Reason.superseded)
        burst_s = time.monotonic() - t
        self.row(f"burst of {len(burst)} revocations (one transaction each)", f"{burst_s:.1f} s")
        last_mail = mail_re.search(burst[-1].subject or "")
        crl_at = ldap_at = None
        for _ in range(int(self.args.timeout / 0.2)):
            if crl_at is None and self.crl_entries().get("eCertCA2-17CRL1", 0) >= full_before + len(burst):
                crl_at = time.monotonic() - t
            if ldap_at is None and last_mail and not self.ldap_find(last_mail.group(1)):
                ldap_at = time.monotonic() - t
            if crl_at is not None and (ldap_at is not None or not last_mail):
                break
            await asyncio.sleep(0.2)
        self.row("burst start -> a full CRL lists all of it (supplementary delay 5 s)",
                 "not seen" if crl_at is None else f"{crl_at:.1f} s")
        self.row("burst start -> LDAP has dropped the last one revoked", "not seen" if ldap_at is None else f"{ldap_at:.1f} s")
        lag = self.loop_lag()
        w = lag.get("windows", {}).get("60s", {})
        self.row("loop lag, burst + CRL + LDAP (probe max / p99, last 60 s)",
                 f"{w.get('max_ms', 'n/a')} / {w.get('p99_ms', 'n/a')} ms", "<= 50 ms")

        # Steady: the OCSP refresh cycle and the publication loop, nothing else.
        poller.phase = "steady"
        cpu0, t = cpu_seconds(self.proc.pid), time.monotonic()
        await asyncio.sleep(self.args.steady)
        cores = (cpu_seconds(self.proc.pid) - cpu0) / (time.monotonic() - t)
        self.row(f"server CPU over {self.args.steady:.0f} s steady (pre-signing, refresh)", f"{cores:.2f} cores",
                 "<= 1 core")
        st = proc_status(self.proc.pid)
        self.row("server RSS peak / steady", f"{mb(st.get('VmHWM', 0))} / {mb(st.get('VmRSS', 0))}", "<= 1 GB")
        self.row("RSS with the OCSP signing processes, steady", mb(tree_rss(self.proc.pid)))

        # One revocation: until OCSP and LDAP show it.
        poller.phase = "one"
        probe = probes[1]
        req = self.ocsp_request(probe.der)
        probe_mail = mail_re.search(probe.subject or "")
        await repo.change_status("eCertCA2-17", probe.serial, Action.REVOKE, reason=Reason.keyCompromise)
        t = time.monotonic()
        ocsp_at = ldap_at = None
        for _ in range(int(self.args.timeout / 0.02)):
            if ocsp_at is None and self.ocsp_status(req) == "revoked":
                ocsp_at = time.monotonic() - t
            if ldap_at is None and probe_mail and not self.ldap_find(probe_mail.group(1)):
                ldap_at = time.monotonic() - t
            if ocsp_at is not None and ldap_at is not None:
                break
            await asyncio.sleep(0.02)
        self.row("one revocation visible in OCSP", "not seen" if ocsp_at is None else f"{ocsp_at:.2f} s", "<= 1 s")
        self.row("one revocation visible in LDAP", "not seen" if ldap_at is None else f"{ldap_at:.2f} s", "<= 2 s")

        # LDAP search latency.
        poller.phase = "ldap"
        # cn/mail searches answer unavailable until the name index has read every certificate
        # (a store made by demo init is indexed by the server, in the background).
        t = time.monotonic()
        for _ in range(int(self.args.timeout / 0.5)):
            status, body = http_get(f"{self.url}/readyz")
            try:
                comps = json.loads(body).get("components", {})
            except (ValueError, AttributeError):
                comps = {}
            if comps.get("ldap", {}).get("name_index") == "complete":
                break
            await asyncio.sleep(0.5)
        self.row("start until the LDAP name index is complete", f"{time.monotonic() - self.t0:.1f} s "
                 f"(waited {time.monotonic() - t:.1f} s here)")
        conn = self.ldap()
        by_mail, by_dn, dns = [], [], []
        for c in probes[2:202]:
            m = mail_re.search(c.subject or "")
            if not m:
                continue
            t = time.monotonic()
            conn.search(self.base(conn), f"(mail={m.group(1)})", attributes=["cn"])
            by_mail.append(time.monotonic() - t)
            dns += [e.entry_dn for e in conn.entries]
        for dn in dns:
            t = time.monotonic()
            conn.search(dn, "(objectClass=*)", search_scope="BASE", attributes=["cn"])
            by_dn.append(time.monotonic() - t)
        conn.unbind()
        for what, lat in (("mail", by_mail), ("DN", by_dn)):
            if lat:
                lat.sort()
                self.row(f"LDAP search by {what} (median / p99 of {len(lat)})",
                         f"{ms(statistics.median(lat))} / {ms(lat[min(len(lat) - 1, len(lat) * 99 // 100)])}",
                         "<= 5 ms")
        lag = self.loop_lag()
        self.row("loop lag since start (probe max / p99)", f"{lag.get('max_ms', 'n/a')} / {lag.get('p99_ms', 'n/a')} ms",
                 "<= 50 ms")
        for g in lag.get("gc", {}).get("generations", []):
            self.row(f"garbage collections, generation {g['generation']} (count / worst)",
                     f"{g['collections']} / {g['worst_ms']} ms")
        stalls = lag.get("stalls", {})
        if stalls:
            # Samples in the selector's wait were the machine's (or another thread's), not ours.
            ours = [w for w in stalls.get("where", []) if "selectors.py" not in w["stack"]]
            self.row(f"loop stalls over {stalls.get('threshold_ms')} ms (all / in our code)",
                     f"{stalls.get('stalls', 0)} / {sum(w['count'] for w in ours)}")
            for w in ours[:5]:
                print(f"    {w['count']:>4} x {w['stack'][-240:]}", flush=True)
        poller.stop()
        for phase in ("start", "burst", "steady", "one", "ldap"):
            if phase in poller.worst:
                self.row(f"worst /healthz latency, {phase}", ms(poller.worst[phase]) + (
                    f" ({poller.failures[phase]} failed)" if poller.failures.get(phase) else ""), "<= 100 ms")
        self.stop()
        await backend.close()

        # A full CRL, issued by this process with the server stopped.
        backend = await open_backend(settings)
        store = backend.store
        try:
            repo = Repository(settings, store=store, signers=load_signers(settings), clock=SystemClock())
            await repo.sync_issuers()
            full = next(s for s in await store.scopes() if s.name == "eCertCA2-17CRL1")
            await repo.check_published()
            t = time.monotonic()
            issued = await repo.issue(full, "bench")
            self.row(f"full CRL issued ({issued.record.entries:,} entries, {mb(len(issued.der))})",
                     f"{time.monotonic() - t:.2f} s", "about 0.1 s per 100,000 entries")
        finally:
            await backend.close()
        if all_ready is not None:
            self.row("start until HTTP, OCSP and LDAP all answer", f"{all_ready:.1f} s", "<= 5 s")

    def crl_entries(self) -> dict[str, int]:
        """Entries of each published CRL, from the JSON index."""
        status, body = http_get(f"{self.url}/crl/")
        if status != 200:
            return {}
        try:
            return {c["name"]: c["entries"] for c in json.loads(body)["crls"]}
        except (ValueError, KeyError, TypeError):
            return {}

    def base(self, conn) -> str:
        if not hasattr(self, "_base"):
            conn.search("", "(objectClass=*)", search_scope="BASE", attributes=["namingContexts"])
            self._base = str(conn.entries[0].namingContexts) if conn.entries else "c=HK"
        return self._base

    def ldap_find(self, mail: str) -> bool:
        try:
            conn = self.ldap()
            conn.search(self.base(conn), f"(mail={mail})", attributes=["cn"])
            found = bool(conn.entries)
            conn.unbind()
            return found
        except Exception:  # noqa: BLE001 - counts as "still there": try again
            return True


class PgTarget:
    """The PostgreSQL side: a database given by --store, or one on a throwaway server
    (--pg-server), and the config of a node on it."""

    def __init__(self, args, directory: Path) -> None:
        self.server = None
        self.password_file = args.store_password_file
        if args.pg_server:
            sys.path.insert(0, str(REPO / "tests"))
            from pg_testlib import PASSWORD, PgServer
            self.server = PgServer().start()
            self.url = self.server.create_database(f"scale_{os.getpid()}")
            self.password_file = directory / "pg-password"
            self.password_file.write_text(PASSWORD + "\n")
        else:
            self.url = args.store

    def password(self) -> str | None:
        return None if self.password_file is None else self.password_file.read_text().rstrip("\r\n")

    def node_config(self, directory: Path, name: str) -> Path:
        """A node of its own on the database: its local place (watermark) and publication
        directory, as each node of a deployment keeps them."""
        text = (directory / "pkirepo.toml").read_text()
        # The database is filled afresh by each run's copy: a node's place from a run before
        # (--reuse) holds CRLs the new database never issued, which a node refuses to serve.
        shutil.rmtree(directory / name, ignore_errors=True)
        (directory / name).mkdir()
        store = f'path = "{name}/node.sqlite"\nurl = "{self.url}"'
        if self.password_file is not None:
            store += f'\npassword_file = "{Path(self.password_file).resolve()}"'
        text = text.replace('path = "pkirepo.sqlite"', store, 1).replace('dir = "pub"', f'dir = "{name}/pub"', 1)
        config = directory / f"{name}.toml"
        config.write_text(text)
        return config

    def copy(self, directory: Path) -> dict:
        """`pkirepo store copy` of the built SQLite store into the database, timed."""
        print(f"copying the store to {self.url} ...", flush=True)
        cmd = [PKIREPO, "store", "copy", "--from", str(directory / "pkirepo.sqlite"), "--to", self.url]
        if self.password_file is not None:
            cmd += ["--to-password-file", str(self.password_file)]
        t = time.monotonic()
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True)
        out = proc.stdout.read()
        _, status, usage = os.wait4(proc.pid, 0)
        if os.waitstatus_to_exitcode(status):
            raise SystemExit(f"store copy failed:\n{out}")
        rows = sum(int(m.group(1)) for m in re.finditer(r"^  \S+ +(\d+) rows", out, re.M))
        return {"wall": time.monotonic() - t, "rows": rows, "rss": usage.ru_maxrss * 1024,
                "cpu": usage.ru_utime + usage.ru_stime, "summary": out}

    async def sizes(self) -> list[tuple[str, int]]:
        import asyncpg
        conn = await asyncpg.connect(self.url, password=self.password())
        try:
            rows = await conn.fetch("SELECT c.relname, pg_total_relation_size(c.oid) FROM pg_class c JOIN pg_namespace"
                                    " n ON n.oid = c.relnamespace WHERE n.nspname = current_schema() AND c.relkind = 'r'"
                                    " ORDER BY 2 DESC")
        finally:
            await conn.close()
        return [(r[0], r[1]) for r in rows]

    def stop(self) -> None:
        if self.server is not None:
            self.server.stop()


class Node:
    """`pkirepo serve` on the database, HTTP only, until stop()."""

    def __init__(self, config: Path, log: Path) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = open(log, "w")
        # Each node its own admin port: two on the demo's default one, the second would not start.
        self.proc = subprocess.Popen([PKIREPO, "--config", str(config), "serve", "--http", f"127.0.0.1:{self.port}",
                                      "--ldap", "", "--admin", f"127.0.0.1:{free_port()}"],
                                     stdout=subprocess.DEVNULL, stderr=self.log, start_new_session=True)

    def presigned(self) -> bool:
        try:
            status, body = http_get(f"{self.url}/healthz/ocsp", timeout=2)
        except OSError:
            return False
        # The node that runs the background work pre-signs; the other answers from its answers.
        return re.search(rb"pre-signing: (complete|done by the worker or node)", body) is not None

    def stop(self) -> None:
        if self.proc.poll() is None:
            stop_group(self.proc)
        self.log.close()


def ab_rps(url: str, body: Path, requests: int, concurrency: int) -> subprocess.Popen:
    return subprocess.Popen(["ab", "-q", "-n", str(requests), "-c", str(concurrency), "-s", "30", "-p", str(body),
                             "-T", "application/ocsp-request", url], stdout=subprocess.PIPE, text=True)


def ab_result(proc: subprocess.Popen) -> tuple[float, int]:
    out = proc.communicate()[0]
    rps = re.search(r"^Requests per second:\s+([\d.]+)", out, re.M)
    bad = sum(int(m.group(1)) for m in re.finditer(r"^(?:Failed requests|Non-2xx responses):\s+(\d+)", out, re.M))
    if proc.returncode or rps is None:
        raise SystemExit(f"ab failed:\n{out}")
    return float(rps.group(1)), bad


def ocsp_nodes(directory: Path, db: PgTarget, args, row) -> None:
    """OCSP throughput on PostgreSQL: one node, then two with the load split between them."""
    if shutil.which("ab") is None:
        raise SystemExit("ab not found: apt-get install apache2-utils (make sysdeps)")
    req = directory / "ocsp-good.req"
    subprocess.run(["openssl", "ocsp", "-issuer", str(directory / "pki" / "ca.pem"), "-cert",
                    str(directory / "pki" / "good.pem"), "-no_nonce", "-reqout", str(req)],
                   check=True, capture_output=True)
    nodes = [Node(db.node_config(directory, name), directory / f"{name}.log") for name in ("pg-node-a", "pg-node-b")]
    try:
        deadline = time.monotonic() + args.timeout
        while not all(n.presigned() for n in nodes) and time.monotonic() < deadline:
            if any(n.proc.poll() is not None for n in nodes):
                raise SystemExit(f"a node exited; see {directory}/pg-node-*.log")
            time.sleep(0.5)
        n, c = args.ocsp_requests, args.concurrency
        for node in nodes:  # warm-up: connections, caches
            ab_result(ab_rps(f"{node.url}/ocsp", req, 500, c))
        one, bad1 = ab_result(ab_rps(f"{nodes[0].url}/ocsp", req, n, c))
        t = time.monotonic()
        procs = [ab_rps(f"{node.url}/ocsp", req, n // 2, c // 2) for node in nodes]
        results = [ab_result(p) for p in procs]
        both = n / (time.monotonic() - t)
        bad2 = sum(b for _, b in results)
        row(f"OCSP pre-signed, one node (ab -c {c}, {n:,} requests)", f"{one:,.0f} /s" + (f", {bad1} failed" if bad1 else ""))
        row(f"OCSP pre-signed, two nodes, load split (2 x ab -c {c // 2})",
            f"{both:,.0f} /s ({' + '.join(f'{r:,.0f}' for r, _ in results)})" + (f", {bad2} failed" if bad2 else ""),
            f"{2 * one:,.0f} /s would be 2x; {os.cpu_count()} cores for both nodes and ab")
    finally:
        for node in nodes:
            node.stop()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--subscribers", type=int, default=1_000_000)
    ap.add_argument("--issuing-key", choices=("rsa", "ec"), default="ec",
                    help="issuing CA key for the demo (default ec: a million RSA signatures take minutes)")
    ap.add_argument("--keep", type=Path, help="build in this directory and keep it")
    ap.add_argument("--reuse", type=Path, help="use a demo made earlier (by --keep) instead of building")
    ap.add_argument("--steady", type=float, default=30.0, help="seconds of steady running to measure CPU over")
    ap.add_argument("--timeout", type=float, default=600.0, help="the longest any one wait lasts")
    ap.add_argument("--store", metavar="URL", help="also on PostgreSQL: this empty database (postgresql://user@host/db)")
    ap.add_argument("--store-password-file", type=Path, metavar="FILE", help="the password for --store")
    ap.add_argument("--pg-server", action="store_true",
                    help="also on PostgreSQL: a throwaway server in a temporary directory (Debian's postgresql)")
    ap.add_argument("--ocsp-requests", type=int, default=20_000, help="requests per OCSP throughput run (default 20000)")
    ap.add_argument("--concurrency", type=int, default=16, help="ab clients in the OCSP runs (default 16)")
    args = ap.parse_args()
    if args.store and args.pg_server:
        ap.error("give --store or --pg-server, not both")
    if args.store and not args.store.startswith(("postgresql://", "postgres://")):
        ap.error(f"--store {args.store}: not a postgresql:// URL")
    tmp = None
    if args.reuse:
        directory = args.reuse
    else:
        directory = args.keep or Path(tempfile.mkdtemp(prefix="pkirepo-scale-"))
        tmp = None if args.keep else directory
    bench = None
    db = None
    pg_bench = None

    def on_signal(signum, frame):
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, on_signal)
    try:
        built = None
        if not args.reuse:
            built = build(directory, args.subscribers, args.issuing_key, "127.0.0.1:8080", "127.0.0.1:1389")
        bench = Bench(directory, args)
        if built:
            bench.row(f"demo init, {args.subscribers:,} subscribers ({args.issuing_key})",
                      f"{built['wall']:.0f} s wall, {built['cpu']:.0f} s CPU, peak RSS {mb(built['rss'])}",
                      "<= 5 min, <= 1 GB at 1M")
        if args.store or args.pg_server:
            db = PgTarget(args, directory)
            copied = db.copy(directory)
            bench.row("store copy SQLite -> PostgreSQL (rows, wall, CPU, peak RSS)",
                      f"{copied['rows']:,} rows in {copied['wall']:.1f} s ({copied['rows'] / copied['wall']:,.0f} rows/s), "
                      f"{copied['cpu']:.0f} s CPU, {mb(copied['rss'])}", "streamed: RSS flat in N")
        print("--- SQLite ---", flush=True)
        asyncio.run(bench.run())
        if db is not None:
            print("--- PostgreSQL ---", flush=True)
            pg_bench = Bench(directory, args, db.node_config(directory, "pg-node"), db)
            asyncio.run(pg_bench.run())
            print("--- OCSP, one node and two, on PostgreSQL ---", flush=True)
            ocsp_nodes(directory, db, args, pg_bench.row)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    finally:
        for b in (bench, pg_bench):
            if b is not None:
                b.stop()
        if db is not None:
            db.stop()
        if tmp is not None:
            shutil.rmtree(tmp, ignore_errors=True)
    load = os.getloadavg()
    print(f"\nScale benchmark, {directory} (load average {load[0]:.1f} on {os.cpu_count()} cores: "
          f"other work on this machine inflates every time below)")
    if pg_bench is None:
        width = max(len(r[0]) for r in bench.rows)
        mwidth = max(len(r[1]) for r in bench.rows)
        print(f"{'figure':<{width}}  {'measured':<{mwidth}}  target")
        for figure, measured, target in bench.rows:
            print(f"{figure:<{width}}  {measured:<{mwidth}}  {target}")
        return 0
    # Side by side: the same figures on each store, then those measured on one side only.
    pg = {r[0]: r for r in pg_bench.rows}
    rows = [(f, m, pg.pop(f, ("", ""))[1], t) for f, m, t in bench.rows] + [(f, "", m, t) for f, m, t in pg.values()]
    width = max(len(r[0]) for r in rows)
    w1, w2 = max(len(r[1]) for r in rows + [("", "SQLite")]), max(len(r[2]) for r in rows + [("", "", "PostgreSQL")])
    print(f"{'figure':<{width}}  {'SQLite':<{w1}}  {'PostgreSQL':<{w2}}  target")
    for figure, a, b, target in rows:
        print(f"{figure:<{width}}  {a:<{w1}}  {b:<{w2}}  {target}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
