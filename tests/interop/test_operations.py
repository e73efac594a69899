"""Operating the repository with real processes on 127.0.0.1: readiness that fails naming a
CRL near its nextUpdate and recovers after the catch-up issuance (and the outside probe
agreeing), maintenance windows within the weekly budget with reads going on throughout a
window, the availability ledger after a SIGKILL, /metrics parsed by prometheus-client with
counters that move, JSON logs with request ids, and a backup restored."""
from __future__ import annotations

import datetime as dt
import getpass
import json
import shutil
import sqlite3
import time
import urllib.request

import ldap3
from cryptography.hazmat.primitives import hashes
from cryptography.x509 import ocsp
from prometheus_client.parser import text_string_to_metric_families

from crl_testlib import ALL_CRLS, ARL, CA, FULL, copy_demo, fetch, http_get, load_cert, template_demo, wait_until
from repo_testlib import Server


def ok(demo, *args):
    """Run the CLI; it must succeed."""
    return demo.cli(*args, check=True)


def readyz(demo) -> tuple[int, dict]:
    status, _, body = http_get(f"{demo.base_url}/readyz")
    return status, json.loads(body)


def ocsp_status(demo, cert_path) -> str:
    cert = load_cert(cert_path)
    ca = load_cert(demo.pki / "ca.pem")
    req = ocsp.OCSPRequestBuilder().add_certificate_by_hash(
        ca.subject.sha1, ca.public_key.sha1, cert.serial_number, hashes.SHA1()).build()
    r = urllib.request.Request(f"{demo.base_url}/ocsp", data=req.public_bytes(_der()),
                               headers={"Content-Type": "application/ocsp-request"})
    with urllib.request.urlopen(r, timeout=10) as f:
        resp = ocsp.load_der_ocsp_response(f.read())
    assert resp.response_status == ocsp.OCSPResponseStatus.SUCCESSFUL
    return resp.certificate_status.name


def _der():
    from cryptography.hazmat.primitives.serialization import Encoding
    return Encoding.DER


def ldap_crl(demo) -> bytes:
    conn = ldap3.Connection(ldap3.Server("127.0.0.1", port=demo.ldap_port, get_info=ldap3.NONE), auto_bind=True)
    try:
        conn.search("cn=Demo e-Cert CA 2 - 17 CRL1,o=Hongkong Post Demo,c=HK", "(objectClass=*)",
                    search_scope=ldap3.BASE, attributes=["certificateRevocationList;binary"])
        return conn.response[0]["raw_attributes"]["certificateRevocationList;binary"][0]
    finally:
        conn.unbind()


def test_readiness_fails_naming_a_crl_near_its_next_update_then_recovers(tmp_path_factory):
    demo = copy_demo(template_demo(tmp_path_factory), tmp_path_factory.mktemp("ready") / "demo")
    # CRLs valid one hour, issued by the CLI; then a server whose readiness margin (90 min)
    # is wider than what they have left, and whose renewal margin (30 min) does not yet
    # make them due: not ready, with no clock to move.
    demo.set_config("next_update_hours = 24", "next_update_hours = 1\nrenew_margin_minutes = 30")
    demo.cli("publish", "--issuer", CA, check=True)
    demo.set_config("next_update_hours = 1", "next_update_hours = 24")
    demo.config.write_text(demo.config.read_text() + "\n[ops]\ncrl_margin_minutes = 90\nheartbeat_seconds = 0.2\n")
    server = Server(demo)
    try:
        status, report = readyz(demo)
        assert status == 503
        assert f"crl:{FULL}" in report["failing"][0] or any(f.startswith(f"crl:{FULL}:") for f in report["failing"])
        assert report["components"][f"crl:{FULL}"]["state"] == "stale"
        assert report["components"][f"crl:{ARL}"]["ready"] is True
        health = demo.cli("health", "--url", demo.base_url, check=False)
        assert health.returncode == 1 and f"FAIL crl:{FULL}" in health.stdout
        probe = demo.cli("probe", demo.base_url, "--critical-minutes", "90", check=False)
        assert probe.returncode == 2, probe.stdout
        assert f"CRITICAL crl {FULL}:" in probe.stdout
        # The catch-up issuance: every CRL of the CA again, valid 24 hours.
        ok(demo, "publish", "--issuer", CA)
        wait_until(lambda: readyz(demo)[0] == 200, what="readiness after the catch-up issuance")
        # The stretch of unreadiness is in the ledger, closed at the first heartbeat after.
        down = wait_until(lambda: [r for r in _downtime(demo) if r[1] is not None],
                          what="the unready stretch to be closed in the ledger")
        assert f"crl:{FULL}" in down[0][2] and down[0][1] >= down[0][0]
        assert demo.cli("health", "--url", demo.base_url).returncode == 0
        state = demo.dir / "probe.json"
        good = ok(demo, "probe", demo.base_url, "--critical-minutes", "90", "--state", str(state),
                  "--ldap", f"ldap://127.0.0.1:{demo.ldap_port}")
        assert good.stdout.count("OK crl ") == len(ALL_CRLS) and good.stdout.count("OK ldap ") == len(ALL_CRLS)
        # The probe remembers the numbers: a CRL number that went back is critical.
        saved = json.loads(state.read_text())
        key = f"{demo.base_url} {FULL}"
        saved[key] += 10
        state.write_text(json.dumps(saved))
        back = demo.cli("probe", demo.base_url, "--state", str(state), check=False)
        assert back.returncode == 2 and "CRL number went back" in back.stdout
    finally:
        server.stop()


def test_maintenance_windows_and_reads_throughout_one(tmp_path_factory):
    demo = copy_demo(template_demo(tmp_path_factory), tmp_path_factory.mktemp("mnt") / "demo")
    day = (dt.datetime.now(dt.timezone.utc) + dt.timedelta(days=1)).replace(hour=2, minute=0, second=0, microsecond=0)
    first = ok(demo, "maintenance", "schedule", "--start", day.isoformat(), "--duration", "50m", "--reason", "upgrade")
    assert "70 min left" in first.stdout
    ok(demo, "maintenance", "schedule", "--start", (day + dt.timedelta(days=2)).isoformat(), "--duration", "50m",
             "--reason", "patches")
    third = demo.cli("maintenance", "schedule", "--start", (day + dt.timedelta(days=4)).isoformat(),
                     "--duration", "50m", "--reason", "one too many", check=False)
    assert third.returncode == 2
    assert "already use 100 min, 20 min left" in third.stderr and "120 min" in third.stderr
    listed = json.loads(ok(demo, "maintenance", "list", "--json").stdout)
    assert [w["state"] for w in listed] == ["announced", "announced"]

    server = Server(demo)
    try:
        status = json.loads(fetch(f"{demo.base_url}/status"))
        assert [w["reason"] for w in status["maintenance"]["announced"]] == ["upgrade", "patches"]
        crl_before = fetch(f"{demo.base_url}/crl/{FULL}.crl")
        ok(demo, "maintenance", "start", "--reason", "disk replacement")
        wait_until(lambda: readyz(demo)[1]["maintenance"], what="the server to see the window")
        code, report = readyz(demo)
        assert code == 200 and report["maintenance"] is True
        # Writes are refused with the reason; reads go on: CRL, certificate, OCSP, LDAP.
        refused = demo.cli("revoke", "--issuer", CA, "--serial", f"{load_cert(demo.pki / 'good.pem').serial_number:X}",
                           check=False)
        assert refused.returncode == 2 and "in maintenance until" in refused.stderr
        # The refusal is on record, with the operating-system user as the actor.
        shown = ok(demo, "audit", "show", "--last", "20").stdout.splitlines()
        assert any(line.split("\t")[2:4] == ["os-user:" + getpass.getuser(), "revoke"]
                   and "in maintenance until" in line for line in shown), shown
        assert fetch(f"{demo.base_url}/crl/{FULL}.crl") == crl_before == ldap_crl(demo)
        assert ocsp_status(demo, demo.pki / "good.pem") == "GOOD"
        assert ocsp_status(demo, demo.pki / "revoked.pem") == "REVOKED"
        assert fetch(f"{demo.base_url}/ca/{CA}.cer")
        assert json.loads(fetch(f"{demo.base_url}/status"))["state"] == "maintenance"
        ok(demo, "maintenance", "end", "--reason", "done")
        wait_until(lambda: not readyz(demo)[1]["maintenance"], what="the window to end")
        assert demo.cli("revoke", "--issuer", CA, "--serial",
                        f"{load_cert(demo.pki / 'good.pem').serial_number:X}").returncode == 0
        cancel = ok(demo, "maintenance", "cancel", str(listed[0]["id"]))
        assert "cancelled" in cancel.stdout
        again = demo.cli("maintenance", "cancel", str(listed[0]["id"]), check=False)
        assert again.returncode == 2 and "already cancelled" in again.stderr
    finally:
        server.stop()


def _downtime(demo) -> list[tuple]:
    con = sqlite3.connect(demo.dir / "pkirepo.sqlite")
    try:
        return con.execute('SELECT start, "end", cause FROM downtime ORDER BY id').fetchall()
    finally:
        con.close()


def _heartbeats(demo) -> list[tuple]:
    con = sqlite3.connect(demo.dir / "pkirepo.sqlite")
    try:
        return con.execute("SELECT id, started_at, beat_at, stopped_at FROM heartbeats ORDER BY id").fetchall()
    finally:
        con.close()


def test_sigkill_counts_as_unplanned_downtime_from_the_last_heartbeat(tmp_path_factory):
    demo = copy_demo(template_demo(tmp_path_factory), tmp_path_factory.mktemp("kill") / "demo")
    beat = 0.2
    demo.config.write_text(demo.config.read_text() + f"\n[ops]\nheartbeat_seconds = {beat}\n")
    server = Server(demo)
    try:
        wait_until(lambda: (rows := _heartbeats(demo)) and rows[-1][2] > rows[-1][1] and rows[-1],
                   what="a heartbeat", timeout=90)
    except BaseException:
        server.stop()  # not left serving when the wait fails
        raise
    killed_at = time.time()
    server.kill()
    last_beat = _heartbeats(demo)[-1][2]
    assert killed_at - beat - 1 <= last_beat <= killed_at + 1  # whole seconds in the store
    # The ledger keeps whole seconds: a start within the second of the last heartbeat cannot
    # be told from a process still beating. Start again once that second is over.
    wait_until(lambda: time.time() >= last_beat + 1, what="the heartbeat's second to pass")
    server = Server(demo)
    try:
        restarted = _heartbeats(demo)[-1][1]
        report = json.loads(ok(demo, "availability", "--weeks", "1", "--json").stdout)
        # On a busy machine a start-up can outlast a heartbeat: readiness then fails while
        # OCSP and LDAP load, which the ledger rightly counts as downtime of its own.
        crashes = [d for d in report["downtime"] if "crashed" in d["cause"]]
        others = [d for d in report["downtime"] if d not in crashes]
        assert all(d["cause"].startswith("not ready:") for d in others), report["downtime"]
        (down,) = crashes
        start = dt.datetime.fromisoformat(down["start"].replace("Z", "+00:00")).timestamp()
        end = dt.datetime.fromisoformat(down["end"].replace("Z", "+00:00")).timestamp()
        assert start == last_beat and end == restarted
        # The recorded length is the time from the kill to the restart, within a heartbeat
        # (and the rounding of the store's whole seconds).
        assert abs((end - start) - (restarted - killed_at)) <= beat + 1
        week = report["weeks"][-1]
        assert week["outages"] == 1 + len(others)
        if not others:
            assert week["unplanned_downtime_minutes"] == round((end - start) / 60, 1)
        assert week["availability"] < 1
    finally:
        server.stop()
    # A clean stop is downtime too, from the stop.
    assert _heartbeats(demo)[-1][3] is not None


def test_metrics_parse_and_move_with_requests_and_logs_carry_request_ids(tmp_path_factory):
    demo = copy_demo(template_demo(tmp_path_factory), tmp_path_factory.mktemp("metrics") / "demo")
    log = demo.dir / "json.log"
    import subprocess
    from repo_testlib import PKIREPO
    with open(log, "w") as err:
        proc = subprocess.Popen([PKIREPO, "--log-format", "json", "serve", "--config", str(demo.config),
                                 "--http", f"127.0.0.1:{demo.http_port}", "--ldap", f"127.0.0.1:{demo.ldap_port}"],
                                stdout=subprocess.PIPE, stderr=err, text=True)
        try:
            for line in proc.stdout:
                if line.startswith("pkirepo: serving on"):
                    break

            def sample(name: str, **labels) -> float:
                text = fetch(f"{demo.base_url}/metrics").decode()
                for family in text_string_to_metric_families(text):
                    for s in family.samples:
                        if s.name == name and all(s.labels.get(k) == v for k, v in labels.items()):
                            return s.value
                return 0.0

            route = "/crl/{file}"
            before = sample("pkirepo_http_requests_total", route=route, status="200")
            for _ in range(3):
                fetch(f"{demo.base_url}/crl/{FULL}.crl")
            assert sample("pkirepo_http_requests_total", route=route, status="200") == before + 3
            missing = sample("pkirepo_http_requests_total", route=route, status="404")
            assert http_get(f"{demo.base_url}/crl/nothing.crl")[0] == 404
            assert sample("pkirepo_http_requests_total", route=route, status="404") == missing + 1
            assert sample("pkirepo_http_request_duration_seconds_count", route=route) >= 4
            presigned = sample("pkirepo_ocsp_responses_total", status="successful", source="presigned")
            assert ocsp_status(demo, demo.pki / "good.pem") == "GOOD"
            assert sample("pkirepo_ocsp_responses_total", status="successful", source="presigned") == presigned + 1
            searches = sample("pkirepo_ldap_operations_total", operation="search", result="0")
            ldap_crl(demo)
            assert sample("pkirepo_ldap_operations_total", operation="search", result="0") == searches + 1
            assert sample("pkirepo_crl_number", crl=FULL) >= 1
            assert 0 < sample("pkirepo_crl_seconds_to_next_update", crl=FULL) <= 24 * 3600
            assert sample("pkirepo_ready") == 1
            assert sample("pkirepo_maintenance_budget_minutes") == 120
            assert abs(sample("pkirepo_process_start_time_seconds") - time.time()) < 600

            # Request ids: a well-formed one is kept and echoed, anything else replaced.
            _, headers, _ = http_get(f"{demo.base_url}/crl/nothing.crl", headers={"X-Request-ID": "probe-42"})
            assert headers["X-Request-ID"] == "probe-42"
            _, headers, _ = http_get(f"{demo.base_url}/healthz", headers={"X-Request-ID": "bad id\twith tab"})
            assert headers["X-Request-ID"] != "bad id\twith tab" and len(headers["X-Request-ID"]) == 16
        finally:
            proc.terminate()
            proc.wait(timeout=30)
            proc.stdout.close()
    lines = [json.loads(line) for line in log.read_text().splitlines() if line.strip()]
    assert lines and all({"time", "level", "logger", "message", "request_id"} <= set(x) for x in lines)


def test_backup_while_serving_then_restore_keeps_numbering_above_what_was_published(tmp_path_factory):
    demo = copy_demo(template_demo(tmp_path_factory), tmp_path_factory.mktemp("backup") / "demo")
    server = Server(demo)
    backup = demo.dir / "backup.sqlite"
    try:
        out = ok(demo, "backup", str(backup))
        assert "backed up" in out.stdout and "(100%)" in out.stderr
        served = {n: fetch(f"{demo.base_url}/crl/{n}.crl") for n in ALL_CRLS}
        # Published after the backup: the backup is behind this.
        ok(demo, "publish", "--issuer", CA)
        wait_until(lambda: fetch(f"{demo.base_url}/crl/{FULL}.crl") != served[FULL], what="the new CRL")
        newest = json.loads(fetch(f"{demo.base_url}/crl/"))["crls"]
        newest = {c["name"]: c["crl_number"] for c in newest}
    finally:
        server.stop()
    refused = demo.cli("backup", str(demo.dir / "pkirepo.sqlite"), check=False)
    assert refused.returncode == 2 and "the store itself" in refused.stderr
    # Restore: the backup copied into place is behind what was published, so check says so
    # and recover brings the numbering back above it.
    shutil.copy(backup, demo.dir / "pkirepo.sqlite")
    for suffix in ("-wal", "-shm"):
        (demo.dir / f"pkirepo.sqlite{suffix}").unlink(missing_ok=True)
    check = demo.cli("check", check=False)
    assert check.returncode == 2 and "behind" in check.stdout
    ok(demo, "recover")
    assert demo.cli("check").returncode == 0
    server = Server(demo)
    try:
        for name in ALL_CRLS:
            number = json.loads(fetch(f"{demo.base_url}/crl/"))["crls"]
            now = {c["name"]: c["crl_number"] for c in number}
            assert now[name] >= newest[name]
        ok(demo, "publish", "--issuer", CA)
        # The server picks the CLI's CRL up within a second; it is numbered above the newest.
        wait_until(lambda: {c["name"]: c["crl_number"] for c in json.loads(fetch(f"{demo.base_url}/crl/"))["crls"]}
                   [FULL] > newest[FULL], what="the CRL published after the restore")
    finally:
        server.stop()
