"""The publication cycle in-process with a pinned clock: catch-up, supplementary CRLs after
a change made through another connection (as the CLI would), and what HTTP then serves."""
from __future__ import annotations

import dataclasses
import datetime as dt

import pytest
from aiohttp.test_utils import TestClient, TestServer
from cryptography import x509

from publisher.root import PUBLICATION, REPO, create_app
from publisher.clock import FixedClock
from publisher.root import load_settings
from publisher.crl import Reason
from publisher.service import Repository, load_signers
from publisher.sqlite_store import SQLiteStore
from publisher.store import Action


@pytest.fixture(scope="module")
def demo_template(tmp_path_factory, demo_factory):
    return demo_factory(tmp_path_factory.mktemp("pubdemo"), subscribers=30)


@pytest.fixture
async def env(demo_template, tmp_path):
    import shutil

    d = tmp_path / "demo"
    shutil.copytree(demo_template.dir, d)
    settings = load_settings(d / "pkirepo.toml")
    settings = dataclasses.replace(
        settings, crl=dataclasses.replace(settings.crl, supplementary_delay=dt.timedelta(seconds=300)))
    latest = None
    async with SQLiteStore(settings.store_path) as s:
        latest = max(c.this_update for c in await s.current_crls())
    clock = FixedClock(latest + dt.timedelta(minutes=1))
    store = SQLiteStore(settings.store_path)
    await store.open()
    app = create_app(settings, store=store, signers=load_signers(settings), clock=clock)
    client = TestClient(TestServer(app))
    await client.start_server()
    yield app, client, clock, settings
    await client.close()
    await store.close()


def good_serial(repo_dir) -> int:
    return x509.load_pem_x509_certificate((repo_dir / "pki" / "good.pem").read_bytes()).serial_number


async def test_supplementary_crl_after_change_from_another_connection(env, demo_template):
    app, client, clock, settings = env
    repo, pub = app[REPO], app[PUBLICATION]
    before = await client.get("/crl/eCertCA2-17CRL1.crl")
    etag = before.headers["ETag"]
    assert await repo.issue_due() == []  # nothing due right after the demo's CRLs

    serial = good_serial(settings.source.parent)
    async with SQLiteStore(settings.store_path) as other:  # like `pkirepo revoke` in another process
        cli = Repository(settings, store=other, signers={}, clock=clock)
        await cli.sync_issuers()
        await cli.change_status("eCertCA2-17", serial, Action.REVOKE, reason=Reason.keyCompromise)

    clock.advance(seconds=299)
    assert await repo.issue_due() == []
    clock.advance(seconds=1)
    issued = await repo.issue_due()
    assert {i.why for i in issued} == {"supplementary"}
    assert {i.record.scope.name for i in issued} == {"eCertCA2-17CRL1", "eCertCA2-17CRL2", "eCertCA2-17CRL3",
                                                     "eCertCA2-17CRL4"}
    assert await pub.refresh()
    after = await client.get("/crl/eCertCA2-17CRL1.crl")
    assert after.headers["ETag"] != etag
    crl = x509.load_der_x509_crl(await after.read())
    entry = crl.get_revoked_certificate_by_serial_number(serial)
    assert entry is not None
    assert entry.extensions.get_extension_for_class(x509.CRLReason).value.reason is x509.ReasonFlags.key_compromise
    # The old ETag now gets the new CRL, the new one a 304.
    assert (await client.get("/crl/eCertCA2-17CRL1.crl", headers={"If-None-Match": etag})).status == 200
    assert (await client.get("/crl/eCertCA2-17CRL1.crl", headers={"If-None-Match": after.headers["ETag"]})).status == 304


async def test_missed_schedule_is_caught_up(env):
    app, client, clock, settings = env
    repo = app[REPO]
    clock.advance(hours=15)  # past a daily issuance time (the test demo has one, 12 h ahead)
    issued = await repo.issue_due()
    names = {i.record.scope.name for i in issued}
    assert "eCertCA2-17CRL1" in names and "RootCA2ARL" not in names  # the ARL is yearly
    assert all(i.why.startswith("scheduled") for i in issued)
    assert await repo.issue_due() == []


async def test_next_update_never_lapses(env):
    app, _, clock, settings = env
    repo = app[REPO]
    clock.advance(hours=23)
    issued = await repo.issue_due()
    assert issued and all(i.record.next_update > clock.now() + dt.timedelta(hours=2) for i in issued)


async def test_cache_control_never_past_next_update(env):
    app, client, clock, _ = env
    pub = app[PUBLICATION]
    rec = pub.crls["eCertCA2-17CRL1"].record
    clock._now = rec.next_update - dt.timedelta(seconds=42)
    r = await client.get("/crl/eCertCA2-17CRL1.crl")
    assert r.headers["Cache-Control"] == "public, max-age=42"


async def test_expired_revoked_dropped_by_policy(env):
    app, _, clock, settings = env
    repo = app[REPO]
    keep = (await repo.issue(next(s for s in await repo.store.scopes() if s.name == "eCertCA2-17CRL1"), "t")).record
    repo.settings = dataclasses.replace(
        settings, crl=dataclasses.replace(settings.crl, drop_expired_after=dt.timedelta(days=0)))
    scope = next(s for s in await repo.store.scopes() if s.name == "eCertCA2-17CRL1")
    clock.advance(days=4 * 365)  # every demo subscriber has expired by then
    dropped = (await repo.issue(scope, "t")).record
    assert keep.entries > 0 and dropped.entries == 0
    assert dropped.number == keep.number + 1


async def test_configured_intermediate_can_be_revoked_onto_the_arl(env):
    app, _, clock, settings = env
    repo = app[REPO]
    ca_cert = repo.issuer_certificate("eCertCA2-17")
    rec = await repo.store.certificate(repo.issuer("RootCA2").id, ca_cert.serial_number)
    assert rec is not None and rec.is_ca  # registered under the root at start-up
    await repo.change_status("RootCA2", ca_cert.serial_number, Action.REVOKE, reason=Reason.cACompromise)
    clock.advance(seconds=300)
    issued = {i.record.scope.name: i for i in await repo.issue_due()}
    arl = x509.load_der_x509_crl(issued["RootCA2ARL"].der)
    assert arl.get_revoked_certificate_by_serial_number(ca_cert.serial_number) is not None


def test_demo_writes_short_names_for_people(demo_template):
    pki = demo_template.pki
    assert (pki / "root.pem").read_bytes() == (pki / "RootCA2.pem").read_bytes()
    assert (pki / "ca.pem").read_bytes() == (pki / "eCertCA2-17.pem").read_bytes()
    for sample in ("good.pem", "revoked.pem", "held.pem"):
        x509.load_pem_x509_certificate((pki / sample).read_bytes())


async def test_retired_ca_crl_is_withdrawn_after_its_next_update(env):
    app, client, clock, settings = env
    repo, pub = app[REPO], app[PUBLICATION]
    await repo.retire("RootCA2")
    await pub.refresh()
    arl = pub.crls["RootCA2ARL"].record
    r = await client.get("/crl/RootCA2ARL.crl")
    assert r.status == 200  # still published until its nextUpdate
    assert await repo.issue_due(force=True)  # the other CA goes on; the retired one issues nothing
    assert (await client.get("/crl/RootCA2ARL.crl")).status == 200
    assert pub.crls["RootCA2ARL"].record.number == arl.number
    clock._now = arl.next_update + dt.timedelta(seconds=1)
    r = await client.get("/crl/RootCA2ARL.crl")
    assert r.status == 404 and "archive" in await r.text()
    index = await (await client.get("/crl/")).json()
    assert "RootCA2ARL" not in {c["name"] for c in index["crls"]}
    archived = await client.get(f"/crl/archive/RootCA2ARL/{arl.number}.crl")
    assert archived.status == 200  # the archive keeps it
