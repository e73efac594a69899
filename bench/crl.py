"""Full-CRL benchmark: pkirepo against `openssl ca -gencrl` over the same revocations.

    python -m bench.crl [--sizes 10000,100000,1000000] [--repeat R] [--keep DIR]

For each size N, in a fresh directory:

1. a throwaway CA (RSA-2048, SHA-256) and an `openssl ca` database whose index.txt holds
   N revoked entries (20-byte serials, varied reasons, varied revocation dates);
2. a pkirepo store populated from that index with `pkirepo import openssl-index`
   (timed: the issue asks for 1,000,000 lines "well under a minute");
3. `openssl ca -gencrl` over the database, timed as a child process;
4. pkirepo end to end from the store: `Repository.issue(full scope)` (read the entries,
   reserve the CRL number, build, sign, archive in the store, write the file atomically),
   timed inside a child process around that one call, with a breakdown;
5. both CRLs parsed with cryptography: signatures checked, and their entries compared
   (byte for byte where the encodings agree, else serial sets).

Every child runs alone, and each peak RSS is that process's own (measured through GNU
time when installed: Linux carries ru_maxrss across fork and exec).
The ratio is openssl's wall time over pkirepo's `issue()` time; pkirepo's whole process
(interpreter start, imports, config, store open) is printed next to it for honesty.
Not a test: nothing here asserts; it prints figures and "MISMATCH" if the CRLs disagree.
"""
from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import json
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

UTC = dt.timezone.utc
TARGET_RATIO = 5.0
REPO = Path(__file__).resolve().parent.parent  # children run elsewhere but import bench/publisher from here

OPENSSL_CNF = """\
# Minimal `openssl ca` configuration for -gencrl, written by bench/crl.py.
[ ca ]
default_ca = CA_default

[ CA_default ]
dir              = {dir}
database         = $dir/index.txt
crlnumber        = $dir/crlnumber
certificate      = $dir/ca.pem
private_key      = $dir/ca.key
new_certs_dir    = $dir
serial           = $dir/serial
default_md       = sha256
default_crl_days = 1
unique_subject   = no
crl_extensions   = crl_ext

[ crl_ext ]
authorityKeyIdentifier = keyid:always
"""

PKIREPO_TOML = """\
# pkirepo configuration for the CRL benchmark, written by bench/crl.py.
[store]
path = "pkirepo.sqlite"

[publication]
dir = "pub"

[crl]
reason_unspecified = "write"                # as openssl does; see REASONS in bench/crl.py
expired_revoked = "keep"

[[ca]]
name = "BenchCA"
certificate = "ca.pem"
key = "ca.key"
full_crl = "BenchCA-full"
partitions = false
"""

# (openssl reason spelling or None for no reason, whether a compromise time is written).
# Chosen so that both tools must encode the same entries, byte for byte:
# - certificateHold is left out: openssl adds a holdInstructionCode extension pkirepo does
#   not write;
# - no keyTime (compromise time): `openssl ca -gencrl` 3.0 drops it, pkirepo writes it as
#   invalidityDate;
# - "unspecified": openssl writes reasonCode 0, so the pkirepo config says
#   reason_unspecified = "write" (the CPS choice; RFC 5280's default omits it).
REASONS = [
    (None, False),
    ("keyCompromise", False),
    ("superseded", False),
    ("cessationOfOperation", False),
    ("affiliationChanged", False),
    ("CACompromise", False),
    ("unspecified", False),
]


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


# Set-up


def make_ca(directory: Path) -> None:
    """ca.key (RSA-2048, mode 600) and a self-signed ca.pem that can sign CRLs."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import rsa
    from cryptography.x509.oid import NameOID

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name([x509.NameAttribute(NameOID.COUNTRY_NAME, "XX"),
                      x509.NameAttribute(NameOID.ORGANIZATION_NAME, "pkirepo bench"),
                      x509.NameAttribute(NameOID.COMMON_NAME, "Bench CRL CA")])
    now = dt.datetime.now(UTC).replace(microsecond=0)
    ski = x509.SubjectKeyIdentifier.from_public_key(key.public_key())
    cert = (
        x509.CertificateBuilder()
        .subject_name(name).issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=1))
        .not_valid_after(now + dt.timedelta(days=3650))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(x509.KeyUsage(False, False, False, False, False, True, True, False, False), critical=True)
        .add_extension(ski, critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ski), critical=False)
        .sign(key, hashes.SHA256())
    )
    key_path = directory / "ca.key"
    fd = os.open(key_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                  serialization.NoEncryption()))
    (directory / "ca.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))


def write_index(path: Path, n: int, seed: int) -> None:
    """N revoked lines: `R <expiry> <revdate>[,<reason>[,<keyTime>]] <serial> unknown /CN=x`."""
    rng = random.Random(seed)
    base = dt.datetime(2025, 1, 1, tzinfo=UTC)
    # A pool of distinct times keeps generation fast while dates still vary.
    pool = [base + dt.timedelta(seconds=rng.randrange(300 * 86400)) for _ in range(4096)]
    utc = [t.strftime("%y%m%d%H%M%SZ") for t in pool]
    gen = [(t - dt.timedelta(days=1)).strftime("%Y%m%d%H%M%SZ") for t in pool]
    expiry = "301231235959Z"
    seen: set[int] = set()
    lines = []
    for i in range(n):
        serial = rng.getrandbits(159) | (1 << 152)  # 20 octets, positive
        while serial in seen:
            serial = rng.getrandbits(159) | (1 << 152)
        seen.add(serial)
        k = rng.randrange(len(pool))
        reason, with_time = REASONS[i % len(REASONS)]
        rev = utc[k]
        if reason is not None:
            rev += "," + reason
            if with_time:
                rev += "," + gen[k]
        lines.append(f"R\t{expiry}\t{rev}\t{serial:040X}\tunknown\t/CN=x\n")
    with open(path, "w", encoding="ascii") as f:
        f.writelines(lines)


def prepare(directory: Path, n: int) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    make_ca(directory)
    write_index(directory / "index.txt", n, seed=n)
    (directory / "index.txt.attr").write_text("unique_subject = no\n")
    (directory / "crlnumber").write_text("01\n")
    (directory / "serial").write_text("01\n")
    (directory / "openssl.cnf").write_text(OPENSSL_CNF.format(dir=directory))
    (directory / "pkirepo.toml").write_text(PKIREPO_TOML)


# Children


GNU_TIME = "/usr/bin/time"


def run_child(argv: list[str], *, cwd: Path, out: Path) -> tuple[float, int, str]:
    """Run one child with stdout to a file and stderr passed through; return (wall seconds,
    peak RSS in KiB of that child alone, stdout).

    Linux carries ru_maxrss across fork and exec, so a child forked from this (large)
    process would report at least our own RSS. GNU time, itself small, forks the real
    child and reports a clean peak; without it the wait4 figure is an upper bound."""
    rss_file = out.with_suffix(".rss")
    clean = os.access(GNU_TIME, os.X_OK)
    cmd = [GNU_TIME, "-f", "%M", "-o", str(rss_file), *argv] if clean else argv
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")]))
    with open(out, "wb") as f:
        t0 = time.perf_counter()
        proc = subprocess.Popen(cmd, cwd=cwd, stdout=f, env=env)
        _, status, usage = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - t0
        proc.returncode = os.waitstatus_to_exitcode(status)
    text = out.read_text(errors="replace")
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(argv)} exited {proc.returncode}:\n{text}")
    peak = usage.ru_maxrss
    if clean:
        peak = int(rss_file.read_text().split()[-1])
    return wall, peak, text


def _vm_hwm_kib() -> int:
    """This process's own peak RSS (VmHWM starts afresh at exec, unlike ru_maxrss)."""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


def child_issue(directory: Path) -> int:
    """In a child process: open the store and time Repository.issue() of the full CRL."""
    from publisher.clock import SystemClock
    from publisher.root import load_settings
    from publisher.crl import ScopeKind
    from publisher.service import Repository, load_signers
    from publisher.sqlite_store import SQLiteStore

    async def run() -> dict:
        settings = load_settings(directory / "pkirepo.toml")
        store = SQLiteStore(settings.store_path)
        async with store:
            repo = Repository(settings, store=store, signers=load_signers(settings), clock=SystemClock())
            await repo.sync_issuers()
            scope = next(s for s in await store.scopes() if s.kind is ScopeKind.FULL)
            phases: dict[str, float] = {}

            def timed(name, fn, is_async):
                if is_async:
                    async def wrapper(*a, **k):
                        t = time.perf_counter()
                        try:
                            return await fn(*a, **k)
                        finally:
                            phases[name] = phases.get(name, 0.0) + time.perf_counter() - t
                else:
                    def wrapper(*a, **k):
                        t = time.perf_counter()
                        try:
                            return fn(*a, **k)
                        finally:
                            phases[name] = phases.get(name, 0.0) + time.perf_counter() - t
                return wrapper

            # Instance attributes shadow the methods: timing only, behaviour unchanged.
            store.snapshot_entries = timed("read", store.snapshot_entries, True)
            store.reserve_crl_number = timed("reserve", store.reserve_crl_number, True)
            store.record_crl = timed("record", store.record_crl, True)
            repo.write_crl_file = timed("write", repo.write_crl_file, False)
            signer = repo.signers["BenchCA"]
            signer.sign = timed("rsa", signer.sign, False)
            rss_before = _vm_hwm_kib()
            t0 = time.perf_counter()
            issued = await repo.issue(scope, "bench")
            total = time.perf_counter() - t0
            phases["build+sign"] = total - sum(v for k, v in phases.items() if k != "rsa")
            return {"issue_s": total, "entries": issued.record.entries, "bytes": len(issued.der),
                    "number": issued.record.number, "file": str(repo.crl_path(scope.name)),
                    "phases": phases, "rss_before_kib": rss_before,
                    "rss_after_kib": _vm_hwm_kib()}

    print(json.dumps(asyncio.run(run())))
    return 0


# Comparison


def _tlv(data: bytes, pos: int) -> tuple[int, int, int]:
    """(tag, content start, content end) of the DER element at pos."""
    tag = data[pos]
    n = data[pos + 1]
    pos += 2
    if n & 0x80:
        k = n & 0x7F
        n = int.from_bytes(data[pos:pos + k], "big")
        pos += k
    return tag, pos, pos + n


def revoked_field(tbs: bytes) -> bytes:
    """The revokedCertificates content of a TBSCertList (b"" when absent)."""
    _, pos, end = _tlv(tbs, 0)
    for _ in range(5):  # version, signature, issuer, thisUpdate, nextUpdate
        _, _, pos = _tlv(tbs, pos)
    if pos < end:
        tag, start, stop = _tlv(tbs, pos)
        if tag == 0x30:
            return tbs[start:stop]
    return b""


def compare(directory: Path, ours_path: Path, openssl_path: Path, n: int) -> str:
    from cryptography import x509

    ca = x509.load_pem_x509_certificate((directory / "ca.pem").read_bytes())
    ours = x509.load_der_x509_crl(ours_path.read_bytes())
    theirs = x509.load_pem_x509_crl(openssl_path.read_bytes())
    problems = []
    for label, c in (("pkirepo", ours), ("openssl", theirs)):
        if not c.is_signature_valid(ca.public_key()):
            problems.append(f"{label} signature does not verify")
        if len(c) != n:
            problems.append(f"{label} has {len(c)} entries, not {n}")
    a, b = revoked_field(ours.tbs_certlist_bytes), revoked_field(theirs.tbs_certlist_bytes)
    if a == b:
        how = "entries byte-identical"
    else:
        sa = {r.serial_number for r in ours}
        sb = {r.serial_number for r in theirs}
        if sa != sb:
            problems.append(f"serial sets differ ({len(sa - sb)} only in pkirepo, {len(sb - sa)} only in openssl)")
        how = "same serials (entry encodings differ)"
        ours_serials = [r.serial_number for r in ours]
        if ours_serials != sorted(ours_serials):
            problems.append("pkirepo entries not sorted by serial")
    return "MISMATCH: " + "; ".join(problems) if problems else how


# Driver


def bench_size(n: int, root: Path, repeat: int) -> dict:
    d = root / f"n{n}"
    py = sys.executable
    log(f"N={n:,}: generating CA and index.txt in {d}")
    t = time.perf_counter()
    prepare(d, n)
    log(f"N={n:,}: prepared in {time.perf_counter() - t:.1f} s "
        f"(index.txt {os.path.getsize(d / 'index.txt') / 2**20:.1f} MiB)")

    # Stores are created only on purpose: an empty one first, as an operator would.
    subprocess.run([py, "-m", "publisher.cli", "--config", "pkirepo.toml", "init"], cwd=d, check=True,
                   stdout=subprocess.DEVNULL)
    log(f"N={n:,}: pkirepo import openssl-index (progress below)")
    imp_s, imp_rss, imp_out = run_child(
        [py, "-m", "publisher.cli", "--config", "pkirepo.toml", "import", "openssl-index", "index.txt",
         "--ca", "ca.pem"], cwd=d, out=d / "import.out")
    log(f"N={n:,}: import {imp_s:.2f} s, peak {imp_rss / 1024:.0f} MiB: {imp_out.strip()}")

    best_o = best_p = None
    for r in range(repeat):
        log(f"N={n:,}: openssl ca -gencrl (run {r + 1}/{repeat})")
        o_s, o_rss, _ = run_child(["openssl", "ca", "-gencrl", "-config", "openssl.cnf", "-out", "openssl.crl"],
                                  cwd=d, out=d / "openssl.out")
        log(f"N={n:,}: openssl {o_s:.3f} s, peak {o_rss / 1024:.0f} MiB")
        if best_o is None or o_s < best_o[0]:
            best_o = (o_s, o_rss)
        log(f"N={n:,}: pkirepo Repository.issue (run {r + 1}/{repeat})")
        p_s, p_rss, p_out = run_child([py, "-m", "bench.crl", "--child-issue", str(d)], cwd=d, out=d / "issue.out")
        info = json.loads(p_out.strip().splitlines()[-1])
        phases = " ".join(f"{k} {v:.3f}" for k, v in info["phases"].items())
        log(f"N={n:,}: pkirepo issue {info['issue_s']:.3f} s ({phases}); process {p_s:.2f} s, "
            f"peak {p_rss / 1024:.0f} MiB (before issue {info['rss_before_kib'] / 1024:.0f} MiB)")
        if best_p is None or info["issue_s"] < best_p[0]["issue_s"]:
            best_p = (info, p_s, p_rss)

    log(f"N={n:,}: comparing the two CRLs")
    verdict = compare(d, Path(best_p[0]["file"]) if Path(best_p[0]["file"]).is_absolute()
                      else d / best_p[0]["file"], d / "openssl.crl", n)
    log(f"N={n:,}: {verdict}")
    info, p_s, p_rss = best_p
    return {"n": n, "import_s": imp_s, "import_rss": imp_rss, "openssl_s": best_o[0], "openssl_rss": best_o[1],
            "issue_s": info["issue_s"], "process_s": p_s, "pkirepo_rss": p_rss, "phases": info["phases"],
            "bytes": info["bytes"], "ratio": best_o[0] / info["issue_s"], "check": verdict}


def print_table(rows: list[dict]) -> None:
    mib = lambda kib: f"{kib / 1024:.0f}"  # noqa: E731
    head = ("entries", "import s", "import MiB", "openssl s", "openssl MiB", "pkirepo issue s", "pkirepo proc s",
            "pkirepo MiB", "ratio", "target")
    table = [head]
    for r in rows:
        ok = "-" if r["n"] < 100_000 else ("ok" if r["ratio"] >= TARGET_RATIO else "MISSED")
        table.append((f"{r['n']:,}", f"{r['import_s']:.2f}", mib(r["import_rss"]), f"{r['openssl_s']:.3f}",
                      mib(r["openssl_rss"]), f"{r['issue_s']:.3f}", f"{r['process_s']:.2f}", mib(r["pkirepo_rss"]),
                      f"{r['ratio']:.1f}x", ok))
    widths = [max(len(str(row[i])) for row in table) for i in range(len(head))]
    for i, row in enumerate(table):
        print("  ".join(str(c).rjust(w) for c, w in zip(row, widths)))
        if i == 0:
            print("  ".join("-" * w for w in widths))
    print()
    for r in rows:
        phases = ", ".join(f"{k} {v:.3f} s" for k, v in r["phases"].items())
        print(f"{r['n']:>9,}: CRL {r['bytes'] / 2**20:.1f} MiB; pkirepo issue = {phases}; {r['check']}")
    print(f"\nratio = openssl ca -gencrl wall time / pkirepo Repository.issue() time (read, build, sign,"
          f" archive, atomic write); target >= {TARGET_RATIO:.0f}x at 100,000 and 1,000,000.")
    how = "GNU time %M" if os.access(GNU_TIME, os.X_OK) else "wait4 ru_maxrss, an upper bound (no /usr/bin/time)"
    print(f"peaks are each child's own peak RSS ({how}); pkirepo's includes the Python interpreter.")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.crl", description=__doc__.split("\n\n")[0])
    p.add_argument("--sizes", default="10000,100000,1000000", help="comma-separated entry counts")
    p.add_argument("--repeat", type=int, default=1, help="runs of openssl and pkirepo per size; best is kept")
    p.add_argument("--keep", metavar="DIR", help="work in DIR and keep it (default: a temporary directory)")
    p.add_argument("--child-issue", metavar="DIR", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.child_issue:
        return child_issue(Path(args.child_issue))
    if shutil.which("openssl") is None:
        raise SystemExit("openssl is not on PATH (apt-get install openssl)")
    sizes = [int(s.replace("_", "")) for s in args.sizes.split(",") if s.strip()]
    ver = subprocess.run(["openssl", "version"], capture_output=True, text=True).stdout.strip()
    log(f"{ver}; Python {sys.version.split()[0]}; {os.cpu_count()} CPUs")
    root = Path(args.keep) if args.keep else Path(tempfile.mkdtemp(prefix="pkirepo-bench-"))
    root.mkdir(parents=True, exist_ok=True)
    rows = []
    try:
        for n in sizes:
            rows.append(bench_size(n, root.resolve(), max(1, args.repeat)))
            if not args.keep:
                shutil.rmtree(root / f"n{n}", ignore_errors=True)
    finally:
        if not args.keep:
            shutil.rmtree(root, ignore_errors=True)
    print()
    print_table(rows)
    return 0


if __name__ == "__main__":
    sys.exit(main())
