"""The audit trail: its canonical encoding and checkpoints (hypothesis), what the CLI and
the schedule put on record, `pkirepo audit verify` against a hand-edited store file, cut-off
newest records and forged checkpoints, appenders in two processes, and the retention floor.
Real `pkirepo` subprocesses over private copies of the demo, real SQLite files."""
from __future__ import annotations

import base64
import dataclasses
import datetime as dt
import getpass
import json
import sqlite3
import subprocess
import sys
import textwrap

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519
from hypothesis import given, strategies as st

from crl_testlib import CA, copy_demo, template_demo
from publisher import audit
from publisher.audit_trail import AuditTrail, verify_trail
from publisher.clock import FixedClock
from publisher.errors import ConfigError, MalformedInput
from publisher.root import audit_trail, load_settings
from publisher.service import Repository, load_signers
from publisher.sqlite_store import SQLiteStore

UTC = dt.timezone.utc
TAMPERED = 1
BAD_INPUT = 2

texts = st.text(max_size=40)
entries = st.builds(
    audit.Entry,
    at=st.integers(0, 2**33).map(lambda s: dt.datetime.fromtimestamp(s, UTC)),
    actor_kind=st.sampled_from(["certificate", "token", "os-user", "system"]),
    actor_name=texts, actor_source=st.none() | texts, action=texts, obj=texts, result=texts,
    detail=st.none() | st.dictionaries(st.text(max_size=8), st.integers() | texts, max_size=4).map(audit.detail_text),
)
hashes_hex = st.binary(min_size=32, max_size=32).map(bytes.hex)


@given(seq=st.integers(1, 2**62), entry=entries, prev=hashes_hex)
def test_canonical_encoding_round_trips(seq, entry, prev):
    assert audit.decode(audit.canonical(seq, entry, prev)) == (seq, entry, prev)


def _changed(value, pos: int, delta: int):
    """`value` with one unit changed: one character of a string, or an integer moved."""
    if isinstance(value, int):
        return value + (delta or 1)
    if isinstance(value, dt.datetime):
        return value + dt.timedelta(seconds=delta or 1)
    if value is None:
        return chr(32 + delta % 90)
    if not value:
        return chr(32 + delta % 90)
    i = pos % len(value)
    new = chr((ord(value[i]) + (delta or 1)) % 0x10FFFF or 1)
    return value[:i] + new + value[i + 1:]


@given(seq=st.integers(1, 2**40), entry=entries, prev=hashes_hex,
       field=st.sampled_from(["seq", "prev", *[f.name for f in dataclasses.fields(audit.Entry)]]),
       pos=st.integers(0, 100), delta=st.integers(1, 200))
def test_any_change_to_any_field_is_detected(seq, entry, prev, field, pos, delta):
    rec = audit.seal(entry, after=(seq - 1, prev))
    if field == "seq":
        forged = dataclasses.replace(rec, seq=_changed(rec.seq, pos, delta))
        start = (forged.seq - 1, prev)
    elif field == "prev":
        forged = dataclasses.replace(rec, prev=_changed(rec.prev, pos, delta))
        start = (seq - 1, prev)
    else:
        changed = dataclasses.replace(entry, **{field: _changed(getattr(entry, field), pos, delta)})
        forged = dataclasses.replace(rec, entry=changed)
        start = (seq - 1, prev)
    assert audit.ChainCheck((seq - 1, prev)).add(rec) is None
    problem = audit.ChainCheck(start).add(forged)
    assert problem is not None and f"record {forged.seq}" in problem


@given(data=st.binary(max_size=300))
def test_checkpoint_parser_takes_anything(data):
    try:
        audit.parse_checkpoint(data, "cp.json")
    except MalformedInput as e:
        assert e.message.startswith("cp.json: not an audit checkpoint")


@given(doc=st.dictionaries(st.sampled_from(["format", "seq", "head", "time", "key_id", "algorithm", "signature"]),
                           st.none() | st.integers() | st.text(max_size=70) | st.just(audit.CHECKPOINT_FORMAT),
                           max_size=7))
def test_checkpoint_parser_takes_any_json(doc):
    try:
        audit.parse_checkpoint(json.dumps(doc).encode(), "cp.json")
    except MalformedInput:
        pass


@pytest.mark.parametrize("key", [ed25519.Ed25519PrivateKey.generate(), ec.generate_private_key(ec.SECP256R1())],
                         ids=["ed25519", "p256"])
def test_checkpoint_signature(key):
    at = dt.datetime(2026, 12, 1, tzinfo=UTC)
    cp = audit.sign_checkpoint(key, 7, "ab" * 32, at)
    parsed = audit.parse_checkpoint(json.dumps(cp.json()).encode(), "cp.json")
    assert parsed == cp and audit.checkpoint_problem(parsed, key.public_key()) is None
    assert audit.checkpoint_problem(dataclasses.replace(cp, seq=8), key.public_key()) == "bad signature"
    other = ed25519.Ed25519PrivateKey.generate().public_key()
    assert "another key" in audit.checkpoint_problem(cp, other)


# The CLI and the schedule, on the demo


@pytest.fixture
def demo(tmp_path_factory, tmp_path):
    return copy_demo(template_demo(tmp_path_factory), tmp_path / "demo")


def rows(demo, after: int = 0) -> list[tuple]:
    con = sqlite3.connect(demo.dir / "pkirepo.sqlite")
    try:
        return con.execute("SELECT seq, actor_kind, actor_name, action, object, result FROM audit WHERE seq > ?"
                           " ORDER BY seq", (after,)).fetchall()
    finally:
        con.close()


def head(demo) -> int:
    return rows(demo)[-1][0]


def serial_of(path) -> str:
    return f"{x509.load_pem_x509_certificate(path.read_bytes()).serial_number:X}".zfill(2)


def new_certificate(demo) -> bytes:
    """A certificate the demo's issuing CA signs now, not yet in the repository."""
    ca = x509.load_pem_x509_certificate((demo.pki / f"{CA}.pem").read_bytes())
    key = serialization.load_pem_private_key((demo.pki / f"{CA}.key").read_bytes(), None)
    now = dt.datetime.now(UTC)
    cert = (x509.CertificateBuilder().subject_name(x509.Name.from_rfc4514_string("CN=audit test"))
            .issuer_name(ca.subject).public_key(ec.generate_private_key(ec.SECP256R1()).public_key())
            .serial_number(0x7A0D17).not_valid_before(now - dt.timedelta(days=1))
            .not_valid_after(now + dt.timedelta(days=30))
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca.public_key()), critical=False)
            .sign(key, hashes.SHA256()))
    return cert.public_bytes(serialization.Encoding.PEM)


def test_cli_changes_and_refusals_are_on_record_with_the_os_user(demo, tmp_path):
    me = getpass.getuser()
    start = head(demo)
    good, held = serial_of(demo.pki / "good.pem"), serial_of(demo.pki / "held.pem")
    new = tmp_path / "new.pem"
    new.write_bytes(new_certificate(demo))
    demo.cli("cert", "add", str(new))
    demo.cli("hold", "--issuer", CA, "--serial", good)
    demo.cli("release", "--issuer", CA, "--serial", good)
    demo.cli("revoke", "--issuer", CA, "--serial", good, "--reason", "keyCompromise")
    assert demo.cli("revoke", "--issuer", CA, "--serial", good, check=False).returncode == BAD_INPUT
    assert demo.cli("release", "--issuer", CA, "--serial", "0BADC0DE", check=False).returncode == BAD_INPUT
    demo.cli("publish", "--issuer", CA)
    got = rows(demo, start)
    mine = [(action, obj, result.split(":")[0]) for _, kind, name, action, obj, result in got
            if (kind, name) == ("os-user", me)]
    assert mine[:6] == [
        ("cert-add", f"certificate {CA} 7A0D17", "ok"),
        ("hold", f"certificate {CA} {good}", "ok"),
        ("release", f"certificate {CA} {good}", "ok"),
        ("revoke", f"certificate {CA} {good}", "ok"),
        ("revoke", f"certificate {CA} {good}", "refused (conflict)"),
        ("release", f"certificate {CA} 0BADC0DE", "refused (not found)"),
    ]
    issued = {obj.split(" #")[0] for action, obj, result in mine[6:] if action == "crl-issue" and result == "ok"}
    assert issued == {f"crl {CA}CRL{n}" for n in range(1, 5)}
    assert held not in " ".join(o for _, o, _ in mine)  # nothing recorded about what was not touched
    p = demo.cli("audit", "verify")
    assert "audit trail verified" in p.stdout
    # A CRL was issued: the published checkpoint vouches for the head after it.
    cp = json.loads((demo.dir / "audit-checkpoint.json").read_text())
    assert cp["seq"] == head(demo)


def test_verify_names_the_record_edited_by_hand(demo):
    assert demo.cli("audit", "verify").returncode == 0
    con = sqlite3.connect(demo.dir / "pkirepo.sqlite")
    con.executescript("DROP TRIGGER audit_append_only; UPDATE audit SET action = 'hold' WHERE seq = 2;")
    con.close()
    p = demo.cli("audit", "verify", check=False)
    assert p.returncode == TAMPERED
    assert "record 2: hash mismatch" in p.stdout


def test_verify_detects_the_newest_records_cut_off(demo):
    last = head(demo)
    con = sqlite3.connect(demo.dir / "pkirepo.sqlite")
    # Whoever cuts records off removes the stored checkpoints that vouch for them too; the
    # published file is off the host.
    con.executescript(f"DELETE FROM audit WHERE seq > {last - 2}; DELETE FROM audit_checkpoints;")
    con.close()
    p = demo.cli("audit", "verify", check=False)
    assert p.returncode == TAMPERED
    assert f"truncated: the trail ends at record {last - 2}, but this checkpoint vouches for record {last}" in p.stdout


def test_verify_away_from_the_signing_key(demo, tmp_path):
    key = serialization.load_pem_private_key((demo.pki / "audit-checkpoint.key").read_bytes(), None)
    pub = tmp_path / "audit.pub"
    pub.write_bytes(key.public_key().public_bytes(serialization.Encoding.PEM,
                                                  serialization.PublicFormat.SubjectPublicKeyInfo))
    assert "audit trail verified" in demo.cli("audit", "verify", "--public-key", str(pub)).stdout
    other = tmp_path / "other.pub"
    other.write_bytes(ed25519.Ed25519PrivateKey.generate().public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo))
    p = demo.cli("audit", "verify", "--public-key", str(other), check=False)
    assert p.returncode == TAMPERED and "signed by another key" in p.stdout
    p = demo.cli("audit", "verify", "--public-key", str(demo.pki / "ca.pem"), check=False)
    assert p.returncode == BAD_INPUT and "--public-key" in p.stderr


def test_verify_names_a_checkpoint_with_a_bad_signature(demo, tmp_path):
    cp = json.loads((demo.dir / "audit-checkpoint.json").read_text())
    sig = bytearray(base64.b64decode(cp["signature"]))
    sig[5] ^= 1
    cp["signature"] = base64.b64encode(bytes(sig)).decode()
    forged = tmp_path / "forged.json"
    forged.write_text(json.dumps(cp))
    p = demo.cli("audit", "verify", "--checkpoint", str(forged), check=False)
    assert p.returncode == TAMPERED and f"{forged} (record {cp['seq']}" in p.stdout and "bad signature" in p.stdout
    con = sqlite3.connect(demo.dir / "pkirepo.sqlite")
    con.execute("UPDATE audit_checkpoints SET signature = ? WHERE id = 1", (bytes(64),))
    con.commit()
    con.close()
    p = demo.cli("audit", "verify", check=False)
    assert p.returncode == TAMPERED and "checkpoint 1 (record" in p.stdout and "bad signature" in p.stdout
    (tmp_path / "junk.json").write_text("{}")
    p = demo.cli("audit", "verify", "--checkpoint", str(tmp_path / "junk.json"), check=False)
    assert p.returncode == BAD_INPUT and "junk.json: not an audit checkpoint" in p.stderr


def test_export_writes_json_lines(demo, tmp_path):
    out = tmp_path / "audit.jsonl"
    demo.cli("audit", "export", "--since", "2000-01-01", "--out", str(out))
    lines = [json.loads(line) for line in out.read_text().splitlines()]
    assert [r["seq"] for r in lines] == list(range(1, head(demo) + 1))
    assert {"actor", "action", "object", "result", "hash", "prev"} <= set(lines[0])
    p = demo.cli("audit", "export", "--since", "2030-01-01", "--until", "2020-01-01", check=False)
    assert p.returncode == BAD_INPUT


async def test_crl_issued_by_the_schedule_is_on_record(demo):
    settings = load_settings(demo.config)
    # The template's one daily issuance is 12 h after it was made: past it, every CRL is due.
    clock = FixedClock(dt.datetime.now(UTC).replace(microsecond=0) + dt.timedelta(hours=13))
    async with SQLiteStore(settings.store_path, create=False) as store:
        trail = audit_trail(settings, store=store, clock=clock)
        repo = Repository(settings, store=store, signers=load_signers(settings), clock=clock, audit=trail)
        await repo.sync_issuers()
        _, before, _ = await store.audit_bounds()
        result = await repo.publish_due()
        assert result.issued and not result.failed
        recs = await store.audit_records(after_seq=before)
        by_schedule = [r for r in recs if (r.entry.actor_kind, r.entry.actor_name) == ("system", "schedule")]
        assert [r.entry.obj for r in by_schedule] == [
            f"{'arl' if i.record.scope.kind.value == 'arl' else 'crl'} {i.record.scope.name} #{i.record.number}"
            for i in result.issued]
        assert {r.entry.action for r in by_schedule} == {"crl-issue"}
        v = await verify_trail(store, keys=audit.CheckpointKeys([trail.key.public_key()]))
        assert v.problems == [] and v.checkpoints >= len(result.issued)


APPENDER = textwrap.dedent("""
    import asyncio, datetime as dt, sys
    from publisher.audit import Entry
    from publisher.sqlite_store import SQLiteStore

    async def main(path, name):
        async with SQLiteStore(path) as store:
            async def one(k):
                for i in range(100):
                    at = dt.datetime.now(dt.timezone.utc).replace(microsecond=0)
                    await store.append_audit(Entry(at, "system", name, None, "test", f"{name} {k} {i}", "ok"))
            await asyncio.gather(*(one(k) for k in range(4)))

    asyncio.run(main(sys.argv[1], sys.argv[2]))
""")


async def test_appenders_in_two_processes_never_fork_the_chain(tmp_path):
    path = tmp_path / "repo.sqlite"
    async with SQLiteStore(path):
        pass  # made and migrated once, before the appenders race
    procs = [subprocess.Popen([sys.executable, "-c", APPENDER, str(path), f"p{n}"]) for n in range(2)]
    for p in procs:
        assert p.wait(timeout=300) == 0
    async with SQLiteStore(path, create=False) as store:
        v = await verify_trail(store)
        assert v.problems == [] and v.records == 800
        objs = {r.entry.obj for r in await store.audit_records(limit=1000)}
        assert len(objs) == 800


def test_retention_below_seven_years_is_refused(demo):
    demo.set_config("retention = 7", "retention = 6")
    with pytest.raises(ConfigError, match=r"audit\.retention: 6 years is below the 7 years"):
        load_settings(demo.config)
    p = demo.cli("audit", "show", check=False)
    assert p.returncode == BAD_INPUT and "audit.retention" in p.stderr


async def test_scheduled_window_start_and_end_are_on_record(tmp_path):
    from publisher.audit_trail import WindowWatch

    now = dt.datetime(2026, 12, 1, 1, 0, tzinfo=UTC)
    clock = FixedClock(now)
    async with SQLiteStore(tmp_path / "repo.sqlite") as store:
        w = await store.schedule_maintenance(now + dt.timedelta(hours=1), now + dt.timedelta(hours=2), "upgrade",
                                             budget=dt.timedelta(minutes=120), at=now)
        watch = WindowWatch(AuditTrail(store, clock))
        assert await watch.step() == 0
        clock.advance(minutes=61)
        assert await watch.step() == 1
        assert await watch.step() == 0  # recorded once
        follower = WindowWatch(AuditTrail(store, clock))
        assert await follower.step(leading=False) == 0
        clock.advance(minutes=60)
        assert await watch.step() == 1
        # Another process follows what passed without recording it; leading later, it records
        # nothing twice.
        assert await follower.step(leading=False) == 0 and await follower.step() == 0
        recs = await store.audit_records()
        assert [(r.entry.actor_name, r.entry.action, r.entry.obj) for r in recs] == [
            ("schedule", "maintenance-window-start", f"maintenance window {w.id}"),
            ("schedule", "maintenance-window-end", f"maintenance window {w.id}")]


def test_a_served_repository_records_its_start_and_publishes_its_checkpoint(demo, server_factory):
    from crl_testlib import http_get, wait_until

    server = server_factory(demo)
    started = wait_until(lambda: [r for r in rows(demo) if r[3] in ("config-load", "ocsp-key-load")][-3:] or None,
                         what="the start on record")
    assert ("system", "pkirepo", "config-load", f"config {demo.config}") == started[0][1:5]
    assert ("system", "ocsp", "ocsp-key-load", f"ocsp responder {CA}", "ok") in [r[1:] for r in started]
    # The server signs the head at start and shows the newest checkpoint on /status.
    status = wait_until(lambda: (lambda s: s if (s.get("audit_checkpoint") or {}).get("seq", 0) >= started[0][0]
                                 else None)(json.loads(http_get(f"{server.url}/status")[2])),
                        what="the start's checkpoint on /status")
    assert status["audit_checkpoint"]["algorithm"] == "ed25519"
    server.stop()
    p = demo.cli("audit", "verify")
    assert f"matches {demo.dir / 'audit-checkpoint.json'}" in p.stdout


async def test_a_batch_of_a_thousand_is_named_whole(tmp_path):
    from publisher.actor import Actor

    serials = [f"{CA} {n:040X}" for n in range(1000)]
    async with SQLiteStore(tmp_path / "repo.sqlite") as store:
        trail = AuditTrail(store, FixedClock(dt.datetime(2026, 12, 1, tzinfo=UTC)))
        await trail.record(Actor("certificate", "CN=feed\x00", "127.0.0.1"), "cert-add", "certificates (1000)", "ok",
                           {"certificates": serials})
        await trail.record(Actor("system", "test"), "cert-add", "certificates", "ok", {"x": "y" * 200_000})
        first, second = await store.audit_records()
        assert json.loads(first.entry.detail)["certificates"] == serials
        assert first.entry.actor_name == "CN=feed\ufffd"
        assert "unrecordable_detail" in json.loads(second.entry.detail)  # the event stays on record
        assert (await verify_trail(store)).problems == []


# Rotating the checkpoint key


async def test_a_rotated_key_keeps_the_old_checkpoints_verifiable_and_retires_the_old_key(tmp_path):
    from publisher.actor import Actor

    old, new = ed25519.Ed25519PrivateKey.generate(), ec.generate_private_key(ec.SECP256R1())
    clock = FixedClock(dt.datetime(2026, 12, 1, tzinfo=UTC))
    ok = Actor("os-user", "operator")
    async with SQLiteStore(tmp_path / "repo.sqlite") as store:
        before = AuditTrail(store, clock, key=old)
        for n in (1, 2):
            await before.record(ok, "revoke", f"certificate A {n}", "ok")
            assert (await before.checkpoint()).key_id == audit.key_id(old.public_key())
        # The new key signs at once, under a record of the rotation.
        after = AuditTrail(store, clock, key=new, previous=[old.public_key()])
        cp = await after.checkpoint_if_moved()
        assert cp is not None and cp.key_id == audit.key_id(new.public_key())
        head = (await store.audit_records(after_seq=cp.seq - 1, limit=1))[0].entry
        assert (head.action, json.loads(head.detail)) == ("audit-key-rotated", {
            "previous_key_id": audit.key_id(old.public_key()), "key_id": audit.key_id(new.public_key())})
        assert await after.checkpoint_if_moved() is None  # nothing moved since
        await after.record(ok, "crl-issue", "crl X #2", "ok")  # signs after a CRL, with the new key
        assert (v := await verify_trail(store, keys=audit.CheckpointKeys([new.public_key(), old.public_key()]))
                ).problems == [] and v.checkpoints == 4
        # Without the retired key, its checkpoints are named once, and what to do about it.
        v = await verify_trail(store, keys=audit.CheckpointKeys([new.public_key()]))
        assert len(v.problems) == 1, v.problems
        assert v.problems[0].startswith("checkpoint 1 (record 1")
        assert " and 1 more up to checkpoint 2 (record 2" in v.problems[0]
        assert "signed by another key" in v.problems[0] and "audit.checkpoint_previous_keys" in v.problems[0]
        # A process still on the old config refuses to sign after the new key has: its
        # checkpoint would put a retired key after its successor.
        with pytest.raises(ConfigError, match="neither audit.checkpoint_key nor in audit.checkpoint_previous_keys"):
            await before.checkpoint()
        await before.record(ok, "crl-issue", "crl X #3", "ok")  # the change is still recorded
        assert (await store.audit_records(after_seq=(await store.audit_bounds())[1] - 1))[0].entry.obj == "crl X #3"
        # Whoever kept the retired private key cannot vouch with it for what came after.
        _, hi, _ = await store.audit_bounds()
        last = (await store.audit_records(after_seq=hi - 1, limit=1))[0]
        await store.add_audit_checkpoint(audit.sign_checkpoint(old, last.seq, last.hash, clock.now()))
        v = await verify_trail(store, keys=audit.CheckpointKeys([new.public_key(), old.public_key()]))
        assert v.problems == [f"checkpoint 5 (record {last.seq}, {clock.now().isoformat()}): signed by a retired "
                              f"checkpoint key (key id {audit.key_id(old.public_key())[:16]}…) after checkpoint 3 "
                              f"was signed by a newer one"]


def test_rotation_by_the_config_and_verification_away_from_the_keys(demo, tmp_path):
    old_key = demo.pki / "audit-checkpoint.key"
    old_pub, new_pub = tmp_path / "old.pub", tmp_path / "new.pub"
    new_key = demo.pki / "audit-checkpoint-2.key"
    key = ec.generate_private_key(ec.SECP256R1())
    new_key.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                          serialization.NoEncryption()))
    new_key.chmod(0o600)
    for path, k in ((old_pub, serialization.load_pem_private_key(old_key.read_bytes(), None)), (new_pub, key)):
        path.write_bytes(k.public_key().public_bytes(serialization.Encoding.PEM,
                                                     serialization.PublicFormat.SubjectPublicKeyInfo))
    demo.set_config('checkpoint_key = "pki/audit-checkpoint.key"',
                    f'checkpoint_key = "pki/audit-checkpoint-2.key"\ncheckpoint_previous_keys = ["{old_pub}"]')
    assert "1 retired key(s) still verify" in demo.cli("config", "check").stdout
    demo.cli("audit", "checkpoint")
    assert "audit-key-rotated" in demo.cli("audit", "show", "--last", "3").stdout
    assert "audit trail verified" in demo.cli("audit", "verify").stdout
    p = demo.cli("audit", "verify", "--public-key", str(new_pub), "--public-key", str(old_pub))
    assert "audit trail verified" in p.stdout
    p = demo.cli("audit", "verify", "--public-key", str(new_pub), check=False)
    assert p.returncode == TAMPERED and "audit.checkpoint_previous_keys" in p.stdout
    # A retired key that is not a public key is named with the file, before anything runs.
    demo.set_config(f'checkpoint_previous_keys = ["{old_pub}"]', f'checkpoint_previous_keys = ["{demo.pki / "ca.pem"}"]')
    p = demo.cli("audit", "verify", check=False)
    assert p.returncode == BAD_INPUT
    assert "audit.checkpoint_previous_keys" in p.stderr and "ca.pem: not a PEM public key" in p.stderr
