"""LDAP benchmark (not a test): pkirepo's LDAP server against OpenLDAP slapd, same entries.

    .venv/bin/python -m bench.ldap [--users N] [--seconds S] [--rounds R] [--serve]

Builds a directory in the CPS layout (c=HK / o=Hongkong Post / one CA, its CRL1 entry, N
subscriber entries with real DER certificates and a real CRL), serves it from pkirepo's
listener in this process and from a throw-away slapd (mdb backend, own config, loaded with
slapadd from the same entries), and measures with one C client (bench/ldapclient.c, built
here against libldap; one connection, one request at a time).  With --serve, the directory
is instead the one `pkirepo serve` builds from a fresh `pkirepo demo init` repository with N
subscribers, measured against that server process (HTTP and OCSP on the same loop) and
against slapd loaded with the same entries.  The searches:

- base: base-object searches of the CRL1 entry for certificateRevocationList;binary;
- mail: subtree searches from c=HK for (mail=...), cycling through every subscriber.

pkirepo is measured as configured (its per-snapshot response cache warm after the first
pass) and, in-process only, with the cache off: what a never-repeated search costs.
Needs: gcc, libldap-dev, slapd (Debian packages).
"""
from __future__ import annotations

import argparse
import asyncio
import base64
import datetime as dt
import shutil
import socket
import subprocess
import sys
import tempfile
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from ldap.directory import Directory
from ldap.listener import start_ldap
from ldap.settings import LdapSettings

HERE = Path(__file__).resolve().parent
SUFFIX = "c=HK"
ORG = "o=Hongkong Post,c=HK"
CA_CN = "Hongkong Post e-Cert CA 2 - 17"
CRL_DN = f"cn={CA_CN} CRL1,{ORG}"
CA_DN = f"cn={CA_CN},{ORG}"
NOW = dt.datetime(2026, 1, 1, tzinfo=dt.timezone.utc)


def make_entries(users: int, revoked: int = 200) -> list[tuple[str, dict[str, object]]]:
    key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([
        x509.NameAttribute(NameOID.COUNTRY_NAME, "HK"),
        x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Hongkong Post"),
        x509.NameAttribute(NameOID.COMMON_NAME, CA_CN),
    ])
    ca = (
        x509.CertificateBuilder().subject_name(ca_name).issuer_name(ca_name)
        .public_key(key.public_key()).serial_number(1)
        .not_valid_before(NOW).not_valid_after(NOW + dt.timedelta(days=3650))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .sign(key, hashes.SHA256())
    )
    revoked_certs = [
        x509.RevokedCertificateBuilder().serial_number(0x1000 + i).revocation_date(NOW).build()
        for i in range(revoked)
    ]
    crl = x509.CertificateRevocationListBuilder(
        issuer_name=ca_name, last_update=NOW, next_update=NOW + dt.timedelta(days=1),
        revoked_certificates=revoked_certs,
    ).sign(key, hashes.SHA256())
    der = lambda o: o.public_bytes(serialization.Encoding.DER)  # noqa: E731
    entries: list[tuple[str, dict[str, object]]] = [
        (SUFFIX, {"objectClass": ["top", "country"], "c": "HK"}),
        (ORG, {"objectClass": ["top", "organization"], "o": "Hongkong Post"}),
        (CA_DN, {"objectClass": ["top", "applicationProcess", "pkiCA"], "cn": CA_CN,
                 "cACertificate;binary": der(ca), "certificateRevocationList;binary": der(crl)}),
        (CRL_DN, {"objectClass": ["top", "cRLDistributionPoint"], "cn": f"{CA_CN} CRL1",
                  "certificateRevocationList;binary": der(crl)}),
    ]
    ukey = ec.generate_private_key(ec.SECP256R1()).public_key()
    for i in range(users):
        serial = 0x100000 + i
        cn = f"Subscriber {i:05d}"
        mail = f"user{i:05d}@example.hk"
        cert = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn),
                                     x509.NameAttribute(NameOID.EMAIL_ADDRESS, mail)]))
            .issuer_name(ca_name).public_key(ukey).serial_number(serial)
            .not_valid_before(NOW).not_valid_after(NOW + dt.timedelta(days=365))
            .sign(key, hashes.SHA256())
        )
        entries.append((f"uid={serial:X},{CA_DN}", {
            "objectClass": ["top", "person", "organizationalPerson", "inetOrgPerson", "pkiUser"],
            "uid": f"{serial:X}", "cn": cn, "sn": cn, "mail": mail,
            "userCertificate;binary": der(cert),
        }))
    return entries


def to_ldif(entries: list[tuple[str, dict[str, object]]]) -> str:
    out = []
    for dn, attrs in entries:
        out.append(f"dn: {dn}")
        for name, values in attrs.items():
            for v in values if isinstance(values, list) else [values]:
                if isinstance(v, bytes):
                    out.append(f"{name}:: {base64.b64encode(v).decode()}")
                else:
                    out.append(f"{name}: {v}")
        out.append("")
    return "\n".join(out) + "\n"


def directory_ldif(directory: Directory) -> str:
    out = []
    for e in directory:
        out.append(f"dn: {e.dn}")
        for a in e.attributes:
            for v in a.values:
                text = None
                if not a.name.endswith(";binary"):
                    try:
                        text = v.decode("ascii")
                    except UnicodeDecodeError:
                        pass
                if text is not None and text.isprintable() and not text.startswith((" ", ":", "<")):
                    out.append(f"{a.name}: {text}")
                else:
                    out.append(f"{a.name}:: {base64.b64encode(v).decode()}")
        out.append("")
    return "\n".join(out) + "\n"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def build_client(tmp: Path) -> Path:
    exe = tmp / "ldapclient"
    subprocess.run(["gcc", "-O2", "-o", str(exe), str(HERE / "ldapclient.c"), "-lldap", "-llber"],
                   check=True)
    return exe


SLAPD_CONF = """\
include /etc/ldap/schema/core.schema
include /etc/ldap/schema/cosine.schema
include /etc/ldap/schema/inetorgperson.schema
pidfile {d}/slapd.pid
argsfile {d}/slapd.args
modulepath /usr/lib/ldap
moduleload back_mdb
loglevel 0
database mdb
maxsize 1073741824
suffix "c=HK"
directory {d}/db
index objectClass eq
index mail eq
index cn eq
"""


async def start_slapd(tmp: Path, ldif: str) -> tuple[asyncio.subprocess.Process, int]:
    d = tmp / "slapd"
    (d / "db").mkdir(parents=True)
    conf = d / "slapd.conf"
    conf.write_text(SLAPD_CONF.format(d=d))
    (d / "data.ldif").write_text(ldif)
    subprocess.run(["slapadd", "-q", "-f", str(conf), "-l", str(d / "data.ldif")], check=True)
    port = free_port()
    proc = await asyncio.create_subprocess_exec(
        shutil.which("slapd") or "/usr/sbin/slapd", "-f", str(conf),
        "-h", f"ldap://127.0.0.1:{port}/", "-d", "0",
        stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL)
    for _ in range(100):
        try:
            _, w = await asyncio.open_connection("127.0.0.1", port)
            w.close()
            break
        except OSError:
            await asyncio.sleep(0.05)  # waiting for slapd to listen; not a timing measurement
    else:
        raise RuntimeError("slapd did not start")
    return proc, port


async def interleaved(rounds: int, runs: list) -> list[float]:
    """Median rate of each run (a zero-argument coroutine factory), measured in turns so
    that load from elsewhere on the machine hits every server alike."""
    import statistics

    results: list[list[float]] = [[] for _ in runs]
    for _ in range(rounds):
        for k, run in enumerate(runs):
            results[k].append(await run())
    return [statistics.median(r) for r in results]


async def measure(client: Path, port: int, mode: str, seconds: float, mails: list[str],
                  crl_dn: str = CRL_DN, suffix: str = SUFFIX) -> float:
    base = crl_dn if mode == "base" else suffix
    args = [str(client), f"ldap://127.0.0.1:{port}", mode, base, str(seconds)]
    if mode == "mail":
        args += mails
    p = await asyncio.create_subprocess_exec(*args, stdout=asyncio.subprocess.PIPE)
    out, _ = await p.communicate()
    ops, secs, errors = out.split()
    if int(errors):
        raise RuntimeError(f"{errors.decode()} failed searches in {mode} mode on port {port}")
    return int(ops) / float(secs)


async def serve_mode(args: argparse.Namespace) -> None:
    from ldap.build import DirectoryBuilder
    from publisher.root import load_settings
    from publisher.sqlite_store import SQLiteStore

    pkirepo = str(Path(sys.executable).parent / "pkirepo")
    with tempfile.TemporaryDirectory(prefix="pkirepo-bench-") as t:
        tmp = Path(t)
        http, ldap_port = free_port(), free_port()
        subprocess.run([pkirepo, "demo", "init", str(tmp / "demo"), "--subscribers", str(args.users),
                        "--http", f"127.0.0.1:{http}", "--ldap", f"127.0.0.1:{ldap_port}"],
                       check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        config = tmp / "demo" / "pkirepo.toml"
        settings = load_settings(config)
        async with SQLiteStore(settings.store_path) as store:
            directory = await DirectoryBuilder(settings.ldap.layout).build(store)
        suffix = directory.naming_contexts[0]
        crl_dn = next(e.dn for e in directory if e.dn.lower().startswith("cn=")
                      and e.dn.split(",")[0].endswith(" CRL1"))
        mails = [v.decode() for e in directory if "mail" in e.by_key for v in e.by_key["mail"].values]
        client = build_client(tmp)
        slapd, slapd_port = await start_slapd(tmp, directory_ldif(directory))
        log = open(tmp / "serve.log", "w")
        server = await asyncio.create_subprocess_exec(
            pkirepo, "serve", "--config", str(config), stdout=asyncio.subprocess.PIPE, stderr=log)
        try:
            while True:
                line = await server.stdout.readline()  # type: ignore[union-attr]
                if not line:
                    raise RuntimeError("pkirepo serve did not start: see its log")
                if line.startswith(b"pkirepo: serving on"):
                    break
            # Wait for the OCSP responder's start-up pre-signing to finish (its log line): it
            # shares the loop and would otherwise be measured with the first runs.
            for _ in range(1200):
                if "OCSP: pre-signed" in (tmp / "serve.log").read_text():
                    break
                await asyncio.sleep(0.1)
            else:
                print("warning: OCSP pre-signing not seen finished; measuring anyway")
            rows = []
            for mode in ("base", "mail"):
                s, o = await interleaved(args.rounds, [
                    lambda p=p: measure(client, p, mode, args.seconds, mails, crl_dn, suffix)
                    for p in (slapd_port, ldap_port)])
                rows.append((mode, s, o))
        finally:
            server.terminate()
            await server.wait()
            slapd.terminate()
            await slapd.wait()
            log.close()
    print(f"pkirepo serve (demo, {len(directory)} entries), median of {args.rounds} interleaved "
          f"{args.seconds:g} s runs, one connection, sequential")
    print(f"{'search':<6} {'slapd/s':>9} {'pkirepo/s':>10} {'ratio':>6}")
    for mode, s, o in rows:
        print(f"{mode:<6} {s:9.0f} {o:10.0f} {o / s:6.2f}")


async def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--users", type=int, default=1000)
    ap.add_argument("--seconds", type=float, default=1.0, help="length of one run")
    ap.add_argument("--rounds", type=int, default=5, help="runs per server, interleaved; medians shown")
    ap.add_argument("--serve", action="store_true",
                    help="measure `pkirepo serve` on a demo repository instead of the in-process listener")
    args = ap.parse_args()
    if args.serve:
        await serve_mode(args)
        return
    entries = make_entries(args.users)
    mails = [a["mail"] for _, a in entries if "mail" in a]  # type: ignore[misc]
    directory = Directory.from_entries(entries)
    with tempfile.TemporaryDirectory(prefix="pkirepo-bench-") as t:
        tmp = Path(t)
        client = build_client(tmp)
        slapd, slapd_port = await start_slapd(tmp, to_ldif(entries))
        ours = await start_ldap(LdapSettings(listen="127.0.0.1:0"), lambda: directory)
        cold = await start_ldap(LdapSettings(listen="127.0.0.1:0", cache_entries=0),
                                lambda: directory)
        try:
            rows = []
            for mode in ("base", "mail"):
                s, o, c = await interleaved(args.rounds, [
                    lambda p=p: measure(client, p, mode, args.seconds, mails)
                    for p in (slapd_port, ours.port, cold.port)])
                rows.append((mode, s, o, c))
        finally:
            await ours.stop()
            await cold.stop()
            slapd.terminate()
            await slapd.wait()
    print(f"in-process listener, {len(entries)} entries, median of {args.rounds} interleaved "
          f"{args.seconds:g} s runs, one connection, sequential")
    print(f"{'search':<6} {'slapd/s':>9} {'pkirepo/s':>10} {'ratio':>6} {'no-cache/s':>11} {'ratio':>6}")
    for mode, s, o, c in rows:
        print(f"{mode:<6} {s:9.0f} {o:10.0f} {o / s:6.2f} {c:11.0f} {c / s:6.2f}")


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
