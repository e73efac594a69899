"""Crash safety of CRL publication: the process SIGKILLs itself at each step of publishing
(publisher/faults.py, PKIREPO_CRASH_AT), then a restart without the fault must serve
complete, valid CRLs whose numbers only ever grew, with the revocation that triggered the
publication on them, and the publication directory must match the store.

Each test first checks the state left by the crash (a reserved but unused number, a
recorded CRL whose file is stale, a torn temporary file...), so it is known that the crash
really hit the step it names.
"""
from __future__ import annotations

import signal
import sqlite3

import pytest
from cryptography import x509

from crl_testlib import (
    ALL_CRLS, ARL, CA, FULL, PARTITIONS, ServerProc, cdp_url, copy_demo, crl_number, fetch, index,
    load_cert, parse_crl, sha256, template_demo, tmp_files, wait_until,
)
from workers_testlib import alive, children

from publisher.faults import POINTS
from publisher.store import from_serial_key

KILLED = -signal.SIGKILL


def store_state(demo) -> tuple[dict[str, int], dict[str, dict[int, str]]]:
    """(last reserved number by scope, {scope: {CRL number: sha256}}) read from SQLite."""
    con = sqlite3.connect(demo.dir / "pkirepo.sqlite")
    try:
        last = {name: from_serial_key(k) if k else 0
                for name, k in con.execute("SELECT name, last_number FROM scopes")}
        crls: dict[str, dict[int, str]] = {}
        for name, number, sha in con.execute(
                "SELECT s.name, c.number, c.sha256 FROM crls c JOIN scopes s ON s.id = c.scope_id"):
            crls.setdefault(name, {})[from_serial_key(number)] = sha
    finally:
        con.close()
    return last, crls


def disk_sha(demo, name: str) -> str:
    return sha256((demo.crl_dir / f"{name}.crl").read_bytes())


def issuers(demo) -> dict[str, x509.Certificate]:
    return {name: x509.load_pem_x509_certificate((demo.pki / f"{ca}.pem").read_bytes())
            for name, ca in [(ARL, "RootCA2"), *[(n, CA) for n in (FULL, *PARTITIONS)]]}


def check_repository(demo, server, before: dict[str, dict], victim: int, victim_partition: str) -> dict[str, dict]:
    """Wait for the restarted server to have caught up, then check everything it serves."""
    def caught_up():
        idx = index(server.url)
        if all(idx[n]["crl_number"] > before[n]["crl_number"] for n in (FULL, *PARTITIONS)):
            return idx
        return None

    idx = wait_until(caught_up, timeout=30, what="the restarted server to issue the supplementary CRLs")
    assert set(idx) == set(ALL_CRLS)
    keys = issuers(demo)
    _, archived = store_state(demo)
    for name, entry in idx.items():
        der = fetch(f"{server.url}/crl/{name}.crl")  # index URLs carry the template's port
        c = x509.load_der_x509_crl(der)
        assert c.is_signature_valid(keys[name].public_key()), name
        parse_crl(der)
        assert crl_number(der) == entry["crl_number"], name
        # served == index == file on disk == store
        assert sha256(der) == entry["sha256"] == disk_sha(demo, name), name
        assert archived[name][entry["crl_number"]] == entry["sha256"], name
        numbers = sorted(archived[name])
        assert numbers[-1] == entry["crl_number"], (name, numbers)
        if name == ARL:
            assert entry["crl_number"] >= before[name]["crl_number"]
        else:
            assert entry["crl_number"] > before[name]["crl_number"], name
    for name in (FULL, victim_partition):
        c = x509.load_der_x509_crl(fetch(f"{server.url}/crl/{name}.crl"))
        entry = c.get_revoked_certificate_by_serial_number(victim)
        assert entry is not None, f"revocation lost from {name}"
        assert entry.extensions.get_extension_for_class(x509.CRLReason).value.reason == x509.ReasonFlags.key_compromise
    for name in set(PARTITIONS) - {victim_partition}:
        assert x509.load_der_x509_crl(fetch(f"{server.url}/crl/{name}.crl")).get_revoked_certificate_by_serial_number(victim) is None
    assert tmp_files(demo.crl_dir) == []
    return idx


@pytest.mark.parametrize("point", POINTS)
def test_server_killed_while_publishing(point, tmp_path_factory, tmp_path):
    demo = copy_demo(template_demo(tmp_path_factory), tmp_path / "demo")
    good = load_cert(demo.pki / "good.pem")
    victim = good.serial_number
    victim_partition = cdp_url(good).rsplit("/", 1)[1].removesuffix(".crl")

    server = ServerProc(demo, env={"PKIREPO_CRASH_AT": point})
    try:
        before = index(server.url)
        assert all(disk_sha(demo, n) == before[n]["sha256"] for n in ALL_CRLS)
        signing = wait_until(lambda: children(server.proc.pid), what="the server's OCSP signing processes")
        # The revocation makes the running server issue supplementary CRLs at once
        # (delay 0); the first of them (the full CRL) dies at `point`.
        p = demo.cli("revoke", "--issuer", CA, "--serial", f"{victim:X}", "--reason", "keyCompromise")
        assert p.returncode == 0, p.stderr
        assert server.wait_exit(timeout=30) == KILLED, server.log()
    finally:
        if server.proc.poll() is None:
            server.proc.kill()
            server.wait_exit()
    # A server killed outright cannot stop its signing processes: they leave by themselves
    # rather than live on, orphans holding the responder keys.
    wait_until(lambda: not any(alive(p) for p in signing), what="the killed server's signing processes to exit")

    # The crash happened where it says.
    last, archived = store_state(demo)
    n0 = before[FULL]["crl_number"]
    if point in ("after-reserve", "after-sign"):
        assert last[FULL] == n0 + 1 and max(archived[FULL]) == n0  # reserved, never recorded
        assert disk_sha(demo, FULL) == before[FULL]["sha256"]
    else:
        assert max(archived[FULL]) == n0 + 1
        crashed_sha = archived[FULL][n0 + 1]
        if point == "after-file-write":
            assert disk_sha(demo, FULL) == crashed_sha
        else:  # recorded in the store, the published file still the old one
            assert disk_sha(demo, FULL) == before[FULL]["sha256"]
    assert (tmp_files(demo.crl_dir) != []) == (point == "mid-file-write"), tmp_files(demo.crl_dir)
    assert all(max(archived[n]) == before[n]["crl_number"] for n in PARTITIONS), "the crash came first"

    server = ServerProc(demo)
    try:
        idx = check_repository(demo, server, before, victim, victim_partition)
    finally:
        server.stop()
    last_after, archived_after = store_state(demo)
    if point in ("after-reserve", "after-sign"):
        # The number reserved before the crash is never handed out.
        assert idx[FULL]["crl_number"] > n0 + 1
        assert n0 + 1 not in archived_after[FULL]
    else:
        # The CRL recorded before the crash stays archived, unchanged, and (it already covers
        # the revocation) is the one served: for after-record and mid-file-write that means
        # start-up rewrote its stale file from the store.
        assert archived_after[FULL][n0 + 1] == crashed_sha
        assert idx[FULL]["crl_number"] == n0 + 1 and idx[FULL]["sha256"] == crashed_sha


@pytest.mark.parametrize("point", ["after-reserve", "after-record", "mid-file-write"])
def test_cli_publish_killed(point, tmp_path_factory, tmp_path):
    """`pkirepo publish` SIGKILLed at a crash point; the next plain publish works, numbers
    grow past everything reserved, and the files match the store."""
    demo = copy_demo(template_demo(tmp_path_factory), tmp_path / "demo")
    last0, archived0 = store_state(demo)
    p = demo.cli("publish", env={"PKIREPO_CRASH_AT": point})
    assert p.returncode == KILLED, (p.returncode, p.stdout, p.stderr)
    last1, archived1 = store_state(demo)
    first = next(n for n in last1 if last1[n] != last0[n])  # the scope it died in
    assert last1[first] == last0[first] + 1
    if point == "mid-file-write":
        assert tmp_files(demo.crl_dir), "the crash should have left a torn temporary file"

    p = demo.cli("publish")
    assert p.returncode == 0, p.stderr
    last2, archived2 = store_state(demo)
    for name in ALL_CRLS:
        newest = max(archived2[name])
        assert newest > max(archived0[name]), name
        assert newest > last1[name], f"{name}: number {last1[name]} reserved before the crash was reused"
        assert disk_sha(demo, name) == archived2[name][newest], f"{name}: file differs from the store"
        for n, sha in archived1[name].items():
            assert archived2[name][n] == sha, "an archived CRL changed"
    # The next publish clears a torn temporary left by the crash (its writer's PID is gone).
    assert tmp_files(demo.crl_dir) == []


def test_cli_publish_killed_mid_write_leaves_no_temporary(tmp_path_factory, tmp_path):
    demo = copy_demo(template_demo(tmp_path_factory), tmp_path / "demo")
    assert demo.cli("publish", env={"PKIREPO_CRASH_AT": "mid-file-write"}).returncode == KILLED
    assert demo.cli("publish").returncode == 0
    assert tmp_files(demo.crl_dir) == []
