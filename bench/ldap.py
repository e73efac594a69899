"""LDAP benchmark (not a test): pkirepo's LDAP server against OpenLDAP slapd, same entries.

    .venv/bin/python -m bench.ldap [--users N] [--seconds S]

Builds a directory in the CPS layout (c=HK / o=Hongkong Post / one CA, its CRL1 entry, N
subscriber entries with real DER certificates and a real CRL), serves it from pkirepo's
listener in this process and from a throw-away slapd (mdb backend, own config, loaded with
slapadd from the same entries), and measures with one C client (bench/ldapclient.c, built
here against libldap; one connection, one request at a time):

- base: base-object searches of the CRL1 entry for certificateRevocationList;binary;
- mail: subtree searches from c=HK for (mail=...), cycling through every subscriber.

pkirepo is measured twice: as configured (its per-snapshot response cache warm after the
first pass) and with the cache off, which is what a never-repeated search costs.
Needs: gcc, libldap-dev, slapd (Debian packages).
"""
from __future__ import annotations

import argparse
import asyncio
import base64
import datetime as dt
import os
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


async def measure(client: Path, port: int, mode: str, seconds: float, mails: list[str]) -> float:
    base = CRL_DN if mode == "base" else SUFFIX
    args = [str(client), f"ldap://127.0.0.1:{port}", mode, base, str(seconds)]
    if mode == "mail":
        args += mails
    p = await asyncio.create_subprocess_exec(*args, stdout=asyncio.subprocess.PIPE)
    out, _ = await p.communicate()
    ops, secs, errors = out.split()
    if int(errors):
        raise RuntimeError(f"{errors.decode()} failed searches in {mode} mode on port {port}")
    return int(ops) / float(secs)


async def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--users", type=int, default=1000)
    ap.add_argument("--seconds", type=float, default=3.0)
    args = ap.parse_args()
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
                s = await measure(client, slapd_port, mode, args.seconds, mails)
                o = await measure(client, ours.port, mode, args.seconds, mails)
                c = await measure(client, cold.port, mode, args.seconds, mails)
                rows.append((mode, s, o, c))
        finally:
            await ours.stop()
            await cold.stop()
            slapd.terminate()
            await slapd.wait()
    print(f"{len(entries)} entries, {args.seconds:g} s per run, one connection, sequential")
    print(f"{'search':<6} {'slapd/s':>9} {'pkirepo/s':>10} {'ratio':>6} {'no-cache/s':>11} {'ratio':>6}")
    for mode, s, o, c in rows:
        print(f"{mode:<6} {s:9.0f} {o:10.0f} {o / s:6.2f} {c:11.0f} {c / s:6.2f}")


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
