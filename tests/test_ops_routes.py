"""/readyz, /status and /metrics on the real application (`create_app` over a copied demo and
a real SQLite store, served by aiohttp's TestServer on 127.0.0.1) with a pinned clock:
readiness that fails naming each CRL past the margin, maintenance reported as 200 with
`"maintenance": true`, request ids, and hypothesis on the new routes and the parsers behind
them. Then the new CLI refusals: exit 2, naming the value."""
from __future__ import annotations

import argparse
import datetime as dt
import json
import logging

import pytest
import pytest_asyncio
from aiohttp.test_utils import TestClient, TestServer
from hypothesis import HealthCheck, given, settings, strategies as st
from prometheus_client.parser import text_string_to_metric_families

from crl_testlib import ARL, FULL, copy_demo, template_demo
from ldap.service import operation_result
from publisher import cli
from publisher.clock import FixedClock
from publisher.logs import VALID_ID, JsonFormatter
from publisher.probe import CRITICAL, check_crl
from publisher.root import create_app, load_settings
from publisher.sqlite_store import SQLiteStore

on_module_loop = pytest.mark.asyncio(loop_scope="module")


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    return copy_demo(template_demo(tmp_path_factory), tmp_path_factory.mktemp("opsroutes") / "demo")


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def app_client(demo):
    settings = load_settings(demo.config)
    store = SQLiteStore(settings.store_path)
    await store.open()
    crl = (await store.current_crls())[0]
    clock = FixedClock(crl.this_update + dt.timedelta(minutes=5))
    app = create_app(settings, store=store, signers={}, clock=clock)
    client = TestClient(TestServer(app, host="127.0.0.1"))
    await client.start_server()
    yield client, clock, store
    await client.close()
    await store.close()


@on_module_loop
async def test_readyz_names_each_crl_past_the_margin_then_maintenance_is_200(app_client):
    client, clock, store = app_client
    r = await client.get("/readyz")
    body = await r.json()
    assert r.status == 200 and body["ready"] and body["components"][f"crl:{FULL}"]["state"] == "current"
    assert body["components"]["store"]["latency_ms"] >= 0
    saved = clock.now()
    try:
        # 30 minutes before the CRLs' nextUpdate: inside the default 60-minute margin.
        next_update = dt.datetime.fromisoformat(body["components"][f"crl:{FULL}"]["next_update"])
        clock._now = next_update - dt.timedelta(minutes=30)
        r = await client.get("/readyz")
        body = await r.json()
        assert r.status == 503
        assert any(f.startswith(f"crl:{FULL}: nextUpdate") for f in body["failing"])
        assert body["components"][f"crl:{ARL}"]["ready"]
        # A window under way: reads are served, so the answer is 200, saying so.
        w = await store.start_emergency_maintenance("test", at=clock.now())
        r = await client.get("/readyz")
        body = await r.json()
        assert r.status == 200 and body["maintenance"] and not body["ready"]
        status = await (await client.get("/status")).json()
        assert status["state"] == "maintenance" and status["maintenance"]["current"]["id"] == w.id
        await store.end_maintenance("done", at=clock.now())
    finally:
        clock._now = saved


@on_module_loop
async def test_metrics_parse(app_client):
    client, _, _ = app_client
    await client.get("/crl/")
    text = await (await client.get("/metrics")).text()
    names = {f.name for f in text_string_to_metric_families(text)}
    assert {"pkirepo_http_requests", "pkirepo_crl_number", "pkirepo_ready", "pkirepo_maintenance_minutes_7d",
            "pkirepo_process_start_time_seconds"} <= names


headers = st.text(st.characters(min_codepoint=0x20, max_codepoint=0x7E), max_size=140)
queries = st.text(st.characters(min_codepoint=0x21, max_codepoint=0x7E, exclude_characters="#"), max_size=40)


@on_module_loop
@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(path=st.sampled_from(["/readyz", "/status", "/metrics", "/healthz"]), rid=headers, query=queries)
async def test_new_routes_never_fail_and_echo_only_well_formed_ids(app_client, path, rid, query):
    client, _, _ = app_client
    r = await client.get(f"{path}?{query}", headers={"X-Request-ID": rid})
    assert r.status in (200, 503)
    await r.read()
    echoed = r.headers["X-Request-ID"]
    assert echoed == rid if VALID_ID.match(rid) else (echoed != rid and VALID_ID.match(echoed))


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=30))
def test_cli_parsers_refuse_with_the_value_or_accept(text):
    for parse in (cli.parse_duration, cli.parse_reason_text, cli.parse_window_id, cli._weeks, cli.parse_ca_serial):
        try:
            parse(text)
        except argparse.ArgumentTypeError as e:
            assert repr(text.strip())[:20] in str(e) or repr(text)[:20] in str(e) or repr(text[:60])[:20] in str(e)


@settings(max_examples=200, deadline=None)
@given(st.binary(min_size=1, max_size=40))
def test_ldap_operation_result_never_raises(op):
    name, result = operation_result(op)
    assert isinstance(name, str) and isinstance(result, str)


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.binary(max_size=200))
def test_probe_takes_any_bytes_as_a_crl(demo, data):
    from cryptography import x509

    ca = x509.load_pem_x509_certificate((demo.pki / "ca.pem").read_bytes())
    result, _ = check_crl("x", data, ca, now=dt.datetime.now(dt.timezone.utc), previous=None,
                          warn=dt.timedelta(hours=3), critical=dt.timedelta(hours=1))
    assert result.code == CRITICAL


def test_json_log_line():
    rec = logging.LogRecord("pkirepo.x", logging.INFO, __file__, 1, "hello %s", ("wörld",), None)
    rec.request_id = "abc"
    out = json.loads(JsonFormatter().format(rec))
    assert out["message"] == "hello wörld" and out["request_id"] == "abc" and out["level"] == "INFO"


@pytest.mark.parametrize("args, named", [
    (["maintenance", "schedule", "--start", "tomorrow", "--duration", "50m", "--reason", "x"], "'tomorrow'"),
    (["maintenance", "schedule", "--start", "2030-01-01T00:00:00Z", "--duration", "0m", "--reason", "x"], "'0m'"),
    (["maintenance", "cancel", "x7"], "'x7'"),
    (["availability", "--weeks", "0"], "'0'"),
    (["probe", "http://127.0.0.1:1", "--ocsp", "eCertCA2-17:XYZ"], "'XYZ'"),
])
def test_cli_refusals_exit_2_naming_the_value(demo, args, named):
    p = demo.cli(*args, check=False)
    assert p.returncode == 2 and named in p.stderr, p.stderr


def test_config_refuses_a_bad_ops_key(demo, tmp_path):
    # A copy of the config beside the demo's files (its paths are relative to its directory).
    config = demo.dir / "ops-test.toml"
    text = demo.config.read_text() + "\n[ops]\nheartbeat_seconds = 0\nno_such_key = 1\n"
    config.write_text(text)
    p = demo.cli("config", "check", str(config), check=False)
    assert p.returncode == 2 and "heartbeat_seconds" in p.stderr and "0" in p.stderr, p.stderr
    config.write_text(text.replace("heartbeat_seconds = 0\n", ""))
    p = demo.cli("config", "check", str(config), check=False)
    assert p.returncode == 2 and "no_such_key" in p.stderr, p.stderr


def test_multiprocess_mode_when_the_directory_is_set(tmp_path):
    """With PROMETHEUS_MULTIPROC_DIR set before the process starts (as worker processes
    have it), values go to the shared files and a scrape merges them; no custom collector,
    Info, Enum or set_function is involved."""
    import subprocess
    import sys

    code = ("import asyncio\nfrom publisher.metrics import Metrics, MULTIPROCESS\nassert MULTIPROCESS\n"
            "m = Metrics()\nm.requests.labels('/crl/{file}', 'GET', '200').inc(2)\nm.crl_number.labels('a').set(5)\n"
            "print(asyncio.run(m.render()).decode())\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True,
                         env={"PROMETHEUS_MULTIPROC_DIR": str(tmp_path), "PATH": "/usr/bin:/bin"}).stdout
    samples = {s.name: s.value for f in text_string_to_metric_families(out) for s in f.samples}
    assert samples["pkirepo_http_requests_total"] == 2 and samples["pkirepo_crl_number"] == 5
    assert list(tmp_path.glob("*.db"))
