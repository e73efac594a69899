"""OcspResponder in process, over a real SQLite store, with a pinned clock."""
from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.x509 import ocsp as x509_ocsp
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import ocsp_pki
from ocsp_helpers import cert_id, make_request, nonce_ext, responder_for
from ocsp.config import NeverIssued, OcspSettings
from ocsp.issuers import issuer_hashes
from ocsp.request import HashAlgorithm
from ocsp.responder import OcspResponder
from ocsp.responders import IssuerResponder
from ocsp.response import ResponseStatus
from ocsp.source import CertState, StoreStatusSource
from publisher import der
from publisher.clock import FixedClock
from publisher.crl import Reason, ScopeKind
from publisher.sqlite_presigned import SQLitePresignedPort
from publisher.sqlite_store import SQLiteStore
from publisher.store import Action, NewCert, Status, StatusChange

NOW = ocsp_pki.NOW
REVOKED_AT = dt.datetime(2026, 1, 10, 8, 30, tzinfo=dt.timezone.utc)
S = OcspSettings()


def der_request(ca: ocsp_pki.CA, *serials: int, algorithm=hashes.SHA1(), nonce: bytes | None = None) -> bytes:
    """A request as OpenSSL builds it (cryptography's builder takes one certificate only)."""
    alg = {h.hashlib_name: h for h in HashAlgorithm}[algorithm.name]
    h = issuer_hashes(ca.cert_der, alg)
    alg_der = der.sequence(der.oid(alg.oid), der.tlv(der.NULL, b""))
    cids = [cert_id(alg_der, h.name_hash, h.key_hash, serial) for serial in serials]
    return make_request(cids, [nonce_ext(nonce)] if nonce is not None else None)


def _hashes(ca, algorithm):
    h = issuer_hashes(ca.cert_der, {a.hashlib_name: a for a in HashAlgorithm}[algorithm.name])
    return h.name_hash, h.key_hash


async def _populate(store: SQLiteStore, ca: ocsp_pki.CA) -> int:
    issuer = await store.put_issuer(ca.name.replace(" ", "-"), ca.cert_der, ca.cert.subject.public_bytes(), b"k")
    certs = [
        NewCert(issuer.id, serial, leaf.public_bytes(serialization.Encoding.DER), None, None, None, None, False)
        for serial, leaf in ca.leaves.items()
    ]
    await store.add_certificates(certs, at=NOW)
    await store.change_status(StatusChange(issuer.id, ocsp_pki.REVOKED_SERIAL, Action.REVOKE, Reason.keyCompromise,
                                           REVOKED_AT, None, b"entry"))
    await store.change_status(StatusChange(issuer.id, ocsp_pki.HOLD_SERIAL, Action.HOLD, Reason.certificateHold,
                                           REVOKED_AT, None, b"entry"))
    return issuer.id


@dataclasses.dataclass
class World:
    store: SQLiteStore
    issuer_id: int
    clock: FixedClock
    ca: ocsp_pki.CA
    path: object
    made: list

    async def responder(self, settings: OcspSettings = S, *, watch: bool = True, **kw) -> OcspResponder:
        responders = kw.pop("responders", None) or {
            self.issuer_id: IssuerResponder(
                self.issuer_id, "ca", self.ca.cert_der, responder_for(self.ca),
                ocsp_pki.RESPONDER_NOT_BEFORE, ocsp_pki.RESPONDER_NOT_AFTER)
        }
        port = SQLitePresignedPort(self.store.path)
        table = await port.open_table()
        w = port.change_probe() if watch else None
        r = OcspResponder(settings, store=self.store, source=kw.pop("source", None) or StoreStatusSource(self.store),
                          clock=self.clock, responders=responders, table=table, watch=w)
        await r.start()
        self.made.append((r, table, w))
        return r

    async def other_process(self) -> SQLiteStore:
        """A second connection to the same file, as `pkirepo revoke` in another process has."""
        other = SQLiteStore(self.path)
        await other.open()
        self.made.append((None, other, None))
        return other


@pytest.fixture
async def world(tmp_path, ec_ca):
    path = tmp_path / "repo.sqlite"
    store = SQLiteStore(path)
    await store.open()
    issuer_id = await _populate(store, ec_ca)
    w = World(store, issuer_id, FixedClock(NOW), ec_ca, path, [])
    yield w
    for r, table, watch in w.made:
        if r is not None:
            r.close()
        await table.close()
        if watch is not None:
            watch.close()
    await store.close()


def parse(body: bytes) -> x509_ocsp.OCSPResponse:
    return x509_ocsp.load_der_ocsp_response(body)


class TestAnswers:
    async def test_statuses(self, world):
        r = await world.responder()
        expected = {
            ocsp_pki.GOOD_SERIAL: (x509_ocsp.OCSPCertStatus.GOOD, None),
            ocsp_pki.REVOKED_SERIAL: (x509_ocsp.OCSPCertStatus.REVOKED, x509.ReasonFlags.key_compromise),
            ocsp_pki.HOLD_SERIAL: (x509_ocsp.OCSPCertStatus.REVOKED, x509.ReasonFlags.certificate_hold),
            ocsp_pki.NEVER_ISSUED_SERIAL: (x509_ocsp.OCSPCertStatus.UNKNOWN, None),
        }
        for serial, (status, reason) in expected.items():
            resp = parse((await r.answer(der_request(world.ca, serial))).body)
            assert resp.certificate_status is status, serial
            assert resp.this_update_utc == NOW and resp.next_update_utc == NOW + S.validity
            if status is x509_ocsp.OCSPCertStatus.REVOKED:
                assert resp.revocation_reason is reason
                assert resp.revocation_time_utc == REVOKED_AT

    @pytest.mark.parametrize("algorithm", [hashes.SHA1(), hashes.SHA256(), hashes.SHA384(), hashes.SHA512()])
    async def test_certid_hashes(self, world, algorithm):
        r = await world.responder()
        resp = parse((await r.answer(der_request(world.ca, ocsp_pki.GOOD_SERIAL, algorithm=algorithm))).body)
        assert resp.certificate_status is x509_ocsp.OCSPCertStatus.GOOD
        assert resp.hash_algorithm.name == algorithm.name

    async def test_pre_signed_answer_is_reused_and_persisted(self, world):
        r = await world.responder()
        req = der_request(world.ca, ocsp_pki.GOOD_SERIAL)
        first = await r.answer(req)
        signed = r.stats["signed"]
        world.clock.advance(minutes=10)
        assert (await r.answer(req)).body == first.body
        assert r.stats["signed"] == signed
        # A second process (or a restart) gets the same bytes from the store.
        r2 = await world.responder()
        assert (await r2.answer(req)).body == first.body
        assert r2.stats["signed"] == 0 and r2.stats["loaded"] == 1

    async def test_nonce_is_signed_fresh_and_echoed(self, world):
        r = await world.responder()
        a = parse((await r.answer(der_request(world.ca, ocsp_pki.GOOD_SERIAL, nonce=b"\x01" * 16))).body)
        # Same request but the nonce: decoded from the template, echoed correctly.
        b = parse((await r.answer(der_request(world.ca, ocsp_pki.GOOD_SERIAL, nonce=b"\x02" * 16))).body)
        assert a.extensions.get_extension_for_class(x509.OCSPNonce).value.nonce == b"\x01" * 16
        assert b.extensions.get_extension_for_class(x509.OCSPNonce).value.nonce == b"\x02" * 16
        assert len(r.decoder.templates) == 1
        for resp in (a, b):
            resp_key = world.ca.responder_cert.public_key()
            from cryptography.hazmat.primitives.asymmetric import ec

            resp_key.verify(resp.signature, resp.tbs_response_bytes, ec.ECDSA(resp.signature_hash_algorithm))

    async def test_ignore_nonce(self, world):
        r = await world.responder(dataclasses.replace(S, ignore_nonce=True))
        plain = await r.answer(der_request(world.ca, ocsp_pki.GOOD_SERIAL))
        with_nonce = await r.answer(der_request(world.ca, ocsp_pki.GOOD_SERIAL, nonce=b"\x01" * 16))
        assert with_nonce.body == plain.body

    async def test_several(self, world):
        r = await world.responder()
        serials = [ocsp_pki.HOLD_SERIAL, ocsp_pki.GOOD_SERIAL, ocsp_pki.NEVER_ISSUED_SERIAL]
        resp = parse((await r.answer(der_request(world.ca, *serials))).body)
        assert [s.serial_number for s in resp.responses] == serials

    async def test_unknown_issuer(self, world):
        r = await world.responder()
        ans = await r.answer(make_request([cert_id()]))
        assert ans.status is ResponseStatus.UNAUTHORIZED and ans.body == b"\x30\x03\x0a\x01\x06"

    async def test_never_issued_as_revoked(self, world):
        r = await world.responder(dataclasses.replace(S, never_issued=NeverIssued.REVOKED))
        resp = parse((await r.answer(der_request(world.ca, ocsp_pki.NEVER_ISSUED_SERIAL))).body)
        assert resp.certificate_status is x509_ocsp.OCSPCertStatus.REVOKED
        assert resp.revocation_time_utc == dt.datetime(1970, 1, 1, tzinfo=dt.timezone.utc)
        assert resp.extensions.get_extension_for_oid(x509.ObjectIdentifier("1.3.6.1.5.5.7.48.1.9"))

    async def test_negative_and_huge_serials_are_unknown(self, world):
        r = await world.responder()
        h = _hashes(world.ca, hashes.SHA1())
        for serial in (-5, 2**200):
            data = make_request([cert_id(name_hash=h[0], key_hash=h[1], serial=serial)])
            resp = parse((await r.answer(data)).body)
            assert resp.certificate_status is x509_ocsp.OCSPCertStatus.UNKNOWN


class TestTimes:
    async def test_next_update_capped_by_the_crl(self, world):
        scope = await world.store.ensure_scope(world.issuer_id, ScopeKind.FULL, "", "full")
        await world.store.record_crl(scope, 1, NOW, NOW + dt.timedelta(hours=1), b"crl", entries=0, covered_event=0,
                                     issued_at=NOW)
        r = await world.responder()
        resp = parse((await r.answer(der_request(world.ca, ocsp_pki.GOOD_SERIAL))).body)
        assert resp.next_update_utc == NOW + dt.timedelta(hours=1)

    async def test_next_update_capped_by_the_responder_certificate(self, world):
        world.clock.advance(seconds=(ocsp_pki.RESPONDER_NOT_AFTER - NOW).total_seconds() - 3600)
        r = await world.responder()
        resp = parse((await r.answer(der_request(world.ca, ocsp_pki.GOOD_SERIAL))).body)
        assert resp.next_update_utc == ocsp_pki.RESPONDER_NOT_AFTER

    async def test_expired_responder_answers_try_later(self, world):
        world.clock.advance(seconds=(ocsp_pki.RESPONDER_NOT_AFTER - NOW).total_seconds())
        r = await world.responder()
        ans = await r.answer(der_request(world.ca, ocsp_pki.GOOD_SERIAL))
        assert ans.status is ResponseStatus.TRY_LATER
        assert any("expired" in p for p in r.readiness())

    async def test_never_serves_past_next_update(self, world):
        r = await world.responder()
        req = der_request(world.ca, ocsp_pki.GOOD_SERIAL)
        first = parse((await r.answer(req)).body)
        world.clock.advance(seconds=S.validity.total_seconds())
        again = parse((await r.answer(req)).body)
        assert again.this_update_utc == NOW + S.validity > first.this_update_utc

    async def test_refresh_by_the_loop(self, world):
        r = await world.responder()
        assert await r.run_once(full=True) == len(world.ca.leaves) * len(S.presign_hashes)
        assert await r.run_once(full=True) == 0  # nothing due
        world.clock.advance(seconds=S.refresh.total_seconds())
        assert await r.run_once(full=True) == len(world.ca.leaves) * len(S.presign_hashes)
        signed = r.stats["signed"]
        resp = parse((await r.answer(der_request(world.ca, ocsp_pki.REVOKED_SERIAL))).body)
        assert resp.this_update_utc == NOW + S.refresh
        assert r.stats["signed"] == signed  # answered from what the loop signed


class TestChanges:
    @pytest.mark.parametrize("watch", [True, False], ids=["data_version", "no-watch"])
    async def test_revocation_by_another_process_shows_at_once(self, world, watch):
        r = await world.responder(watch=watch)
        req = der_request(world.ca, ocsp_pki.GOOD_SERIAL)
        assert parse((await r.answer(req)).body).certificate_status is x509_ocsp.OCSPCertStatus.GOOD
        other = await world.other_process()
        await other.change_status(StatusChange(world.issuer_id, ocsp_pki.GOOD_SERIAL, Action.REVOKE,
                                               Reason.superseded, NOW, None, b"entry"))
        resp = parse((await r.answer(req)).body)  # no loop ran in between
        assert resp.certificate_status is x509_ocsp.OCSPCertStatus.REVOKED
        assert resp.revocation_reason is x509.ReasonFlags.superseded

    async def test_release_and_stored_rows_are_checked(self, world):
        r = await world.responder()
        req = der_request(world.ca, ocsp_pki.HOLD_SERIAL)
        assert parse((await r.answer(req)).body).revocation_reason is x509.ReasonFlags.certificate_hold
        other = await world.other_process()
        await other.change_status(StatusChange(world.issuer_id, ocsp_pki.HOLD_SERIAL, Action.RELEASE, None, NOW,
                                               None, None))
        # A responder that never saw the event (a restart) must not trust the stored hold.
        fresh = await world.responder()
        assert parse((await fresh.answer(req)).body).certificate_status is x509_ocsp.OCSPCertStatus.GOOD
        assert parse((await r.answer(req)).body).certificate_status is x509_ocsp.OCSPCertStatus.GOOD

    async def test_added_certificate_is_no_longer_unknown(self, world):
        r = await world.responder()
        new_serial = 0x4242
        req = der_request(world.ca, new_serial)
        good = der_request(world.ca, ocsp_pki.GOOD_SERIAL)
        assert parse((await r.answer(req)).body).certificate_status is x509_ocsp.OCSPCertStatus.UNKNOWN
        await r.answer(good)
        other = await world.other_process()
        await other.add_certificates([NewCert(world.issuer_id, new_serial, None, None, None, None, None, False)], at=NOW)
        assert parse((await r.answer(req)).body).certificate_status is x509_ocsp.OCSPCertStatus.GOOD
        # Adding certificates leaves the answers about the others in memory.
        before = dict(r.stats)
        await r.answer(good)
        assert (r.stats["signed"], r.stats["loaded"]) == (before["signed"], before["loaded"])

    async def test_answer_signed_from_a_read_that_raced_a_change_is_not_kept(self, world):
        """A request reads "good", a revocation commits and is applied, then the request
        finishes: its answer must not stay in memory for the next request."""
        gate = asyncio.Event()
        reading = asyncio.Event()

        class RacingSource(StoreStatusSource):
            async def state(self, issuer_id, serial):
                st = await super().state(issuer_id, serial)
                if serial == ocsp_pki.GOOD_SERIAL and not gate.is_set():
                    reading.set()
                    await gate.wait()
                return st

        r = await world.responder(source=RacingSource(world.store))
        req = der_request(world.ca, ocsp_pki.GOOD_SERIAL)
        slow = asyncio.create_task(r.answer(req))
        await reading.wait()
        other = await world.other_process()
        await other.change_status(StatusChange(world.issuer_id, ocsp_pki.GOOD_SERIAL, Action.REVOKE,
                                               Reason.keyCompromise, NOW, None, b"entry"))
        await r.follower.ensure_current()  # another request notices the change meanwhile
        gate.set()
        assert parse((await slow).body).certificate_status is x509_ocsp.OCSPCertStatus.GOOD  # read before the commit
        assert parse((await r.answer(req)).body).certificate_status is x509_ocsp.OCSPCertStatus.REVOKED


class TestFailures:
    async def test_a_failing_store_is_internal_error_not_an_exception(self, world, caplog):
        class Broken(StoreStatusSource):
            async def state(self, issuer_id, serial):
                raise RuntimeError("disk on fire")

        r = await world.responder(source=Broken(world.store))
        ans = await r.answer(der_request(world.ca, ocsp_pki.GOOD_SERIAL))
        assert ans.status is ResponseStatus.INTERNAL_ERROR and ans.body == b"\x30\x03\x0a\x01\x02"
        assert "disk on fire" in caplog.text  # logged, with its traceback, not sent

    async def test_a_busy_store_is_try_later(self, world):
        from publisher.errors import Unavailable

        class Busy(StoreStatusSource):
            async def state(self, issuer_id, serial):
                raise Unavailable("store busy")

        r = await world.responder(source=Busy(world.store))
        ans = await r.answer(der_request(world.ca, ocsp_pki.GOOD_SERIAL))
        assert ans.status is ResponseStatus.TRY_LATER


class TestReadiness:
    async def test_problem_without_identity(self, world):
        broken = {world.issuer_id: IssuerResponder(world.issuer_id, "ca", world.ca.cert_der, None,
                                                   problem="no ocsp_responder")}
        r = await world.responder(responders=broken)
        assert r.readiness() == ["no ocsp_responder"]
        ans = await r.answer(der_request(world.ca, ocsp_pki.GOOD_SERIAL))
        assert ans.status is ResponseStatus.TRY_LATER

    def test_cert_state_answers(self):
        assert CertState(Status.REVOKED, 0, REVOKED_AT).answer()[2] is None  # unspecified: omitted
        assert CertState(Status.HOLD, 6, REVOKED_AT).answer()[2] is Reason.certificateHold


# The handler as a whole: whatever arrives, an OCSPResponse with a fitting status comes back.

_SEEDS = []


@pytest.fixture(scope="module")
def handler(tmp_path_factory):
    ca = ocsp_pki.make_ec_ca()
    loop = asyncio.new_event_loop()
    path = tmp_path_factory.mktemp("h") / "repo.sqlite"
    store = SQLiteStore(path)

    async def setup():
        await store.open()
        issuer_id = await _populate(store, ca)
        w = World(store, issuer_id, FixedClock(NOW), ca, path, [])
        return w, await w.responder(dataclasses.replace(S, max_requests=4))

    w, r = loop.run_until_complete(setup())
    _SEEDS[:] = [der_request(ca, ocsp_pki.GOOD_SERIAL), der_request(ca, ocsp_pki.REVOKED_SERIAL, nonce=b"\x05" * 16),
                 der_request(ca, ocsp_pki.GOOD_SERIAL, ocsp_pki.HOLD_SERIAL, algorithm=hashes.SHA256())]
    yield loop, r
    r.close()
    loop.run_until_complete(store.close())
    loop.close()


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(seed=st.integers(0, 2), ops=st.lists(st.tuples(st.integers(0, 2), st.integers(0, 500), st.integers(0, 255)),
                                            min_size=0, max_size=4))
def test_handler_answers_everything(handler, seed, ops):
    loop, r = handler
    data = bytearray(_SEEDS[seed])
    for kind, pos, value in ops:
        if not data:
            break
        pos %= len(data)
        if kind == 0:
            data[pos] ^= value or 1
        elif kind == 1:
            del data[pos:]
        else:
            data[pos:pos] = bytes([value])
    ans = loop.run_until_complete(r.answer(bytes(data)))
    resp = parse(ans.body)
    assert resp.response_status.value == int(ans.status)
    assert ans.status in (ResponseStatus.SUCCESSFUL, ResponseStatus.MALFORMED_REQUEST, ResponseStatus.UNAUTHORIZED)
    if not ops:
        assert ans.status is ResponseStatus.SUCCESSFUL


async def _add_serials(world, serials) -> None:
    await world.store.add_certificates(
        [NewCert(world.issuer_id, s, None, None, None, None, None, False) for s in serials], at=NOW)


def _rows(world) -> dict[tuple[int, str], tuple]:
    import sqlite3

    from publisher.store import from_serial_key
    with sqlite3.connect(world.path) as db:
        return {(from_serial_key(s), h): (status, signed) for s, h, status, signed in
                db.execute("SELECT serial, hash, status, signed FROM ocsp_responses")}


class TestCacheBound:
    async def test_a_flood_of_distinct_requests_stays_within_the_bound(self, world):
        await _add_serials(world, range(0x5000, 0x5040))
        r = await world.responder(dataclasses.replace(S, cache_entries=8))
        hot = der_request(world.ca, ocsp_pki.GOOD_SERIAL)
        await r.answer(hot)
        for serial in list(range(0x5000, 0x5040)) + list(range(0x9000, 0x9100)):  # issued, then never issued
            assert (await r.answer(der_request(world.ca, serial))).status is ResponseStatus.SUCCESSFUL
            await r.answer(hot)  # used all along: never the one evicted
            assert len(r.cache.entries) <= 8 and len(r.cache.unknown) <= 1
        assert (world.issuer_id, ocsp_pki.GOOD_SERIAL, "sha1") in r.cache.entries
        # What the cache holds is left alone by the garbage collector (no loop-holding walk).
        import gc
        gc.collect()
        assert not any(gc.is_tracked(k) or gc.is_tracked(v) for k, v in r.cache.entries.items())

    async def test_background_signing_never_exceeds_the_bound(self, world):
        await _add_serials(world, range(0x5000, 0x5040))
        r = await world.responder(dataclasses.replace(S, cache_entries=5))
        assert await r.run_once(full=True) == (0x40 + len(world.ca.leaves)) * len(S.presign_hashes)
        assert len(r.cache.entries) == 5
        world.clock.advance(seconds=S.refresh.total_seconds())
        assert await r.run_once() > 0
        assert len(r.cache.entries) == 5


class TestDueRows:
    async def test_only_due_and_missing_answers_are_read(self, world):
        await _add_serials(world, range(0x5000, 0x5010))
        r = await world.responder()
        table = r.cache.table
        missing = await table.missing(world.issuer_id, "sha1", -1, 1000)
        assert len(missing) == 0x10 + len(world.ca.leaves)
        assert await r.run_once(full=True) == len(missing) * len(S.presign_hashes)
        assert await table.missing(world.issuer_id, "sha1", -1, 1000) == []
        assert await table.due(world.clock.now(), [world.issuer_id], ["sha1", "sha256"], 1000) == []
        # Refresh times are spread over the last quarter of the period, by serial.
        world.clock.advance(seconds=S.refresh.total_seconds() * 0.75 - 1)
        assert await table.due(world.clock.now(), [world.issuer_id], ["sha1", "sha256"], 1000) == []
        world.clock.advance(seconds=S.refresh.total_seconds() * 0.125)
        some = await table.due(world.clock.now(), [world.issuer_id], ["sha1", "sha256"], 1000)
        assert 0 < len(some) < len(missing) * 2
        world.clock.advance(seconds=S.refresh.total_seconds() * 0.125 + 1)
        due = await table.due(world.clock.now(), [world.issuer_id], ["sha1", "sha256"], 1000)
        assert len(due) == len(missing) * 2
        assert await table.due(world.clock.now(), [world.issuer_id], ["sha1"], 1000) == [
            d for d in due if d.hash_name == "sha1"]
        assert await table.due(world.clock.now(), [world.issuer_id + 1], ["sha1"], 1000) == []
        # A new certificate is missing, and only it.
        await _add_serials(world, [0x6000])
        assert [m.serial for m in await table.missing(world.issuer_id, "sha256", -1, 1000)] == [0x6000]

    async def test_a_change_made_while_nobody_followed_is_signed_again(self, world):
        r = await world.responder()
        await r.run_once(full=True)
        other = await world.other_process()
        await other.change_status(StatusChange(world.issuer_id, ocsp_pki.GOOD_SERIAL, Action.REVOKE,
                                               Reason.superseded, NOW, None, b"entry"))
        fresh = await world.responder()  # a restart: the revocation is before its change token
        await fresh.run_once()
        assert {h: st for (s, h), (st, _) in _rows(world).items() if s == ocsp_pki.GOOD_SERIAL} == {
            "sha1": 1, "sha256": 1}

    async def test_compact_rows(self, tmp_path, rsa_ca):
        """RSA-2048 answers (the larger signature), table and due index included: a few
        hundred bytes per stored answer, not kilobytes."""
        import sqlite3

        path = tmp_path / "repo.sqlite"
        store = SQLiteStore(path)
        await store.open()
        try:
            issuer_id = await _populate(store, rsa_ca)
            await store.add_certificates(
                [NewCert(issuer_id, s, None, None, None, None, None, False) for s in range(10**15, 10**15 + 600)],
                at=NOW)
            w = World(store, issuer_id, FixedClock(NOW), rsa_ca, path, [])
            rsa_responder = IssuerResponder(issuer_id, "ca", rsa_ca.cert_der, responder_for(rsa_ca, use_ca_key=True),
                                            ocsp_pki.RESPONDER_NOT_BEFORE, ocsp_pki.RESPONDER_NOT_AFTER)
            r = await w.responder(responders={issuer_id: rsa_responder})
            assert await r.run_once(full=True) == 603 * 2
            with sqlite3.connect(path) as db:
                size = db.execute("SELECT sum(pgsize) FROM dbstat WHERE name IN"
                                  " ('ocsp_responses', 'ocsp_responses_due')").fetchone()[0]
                rows = db.execute("SELECT count(*) FROM ocsp_responses").fetchone()[0]
            assert rows == 603 * 2
            assert size / rows < 800, size / rows  # measured: about 620 (RSA-2048), was 4.5 KB
            served = (await r.answer(der_request(rsa_ca, 10**15))).body
            assert x509_ocsp.load_der_ocsp_response(served).certificate_status is x509_ocsp.OCSPCertStatus.GOOD
        finally:
            for resp, table, watch in w.made:
                resp.close()
                await table.close()
                watch.close()
            await store.close()


class TestRaces:
    async def test_a_revocation_during_a_batch_is_never_overwritten(self, world):
        """The pre-signer reads "good", a revocation commits while the batch is signed, then
        the batch is saved: neither the store nor memory may keep the stale "good"."""
        r = await world.responder()
        other = await world.other_process()
        sign = r.signer.pool.sign
        revoked = []

        async def sign_then_revoke(jobs):
            out = await sign(jobs)
            if not revoked and any(j.serial == ocsp_pki.GOOD_SERIAL for j in jobs):
                await other.change_status(StatusChange(world.issuer_id, ocsp_pki.GOOD_SERIAL, Action.REVOKE,
                                                       Reason.keyCompromise, NOW, None, b"entry"))
                revoked.append(True)
            return out

        r.signer.pool.sign = sign_then_revoke
        await r.run_once(full=True)
        assert revoked
        stored = {h: st for (s, h), (st, _) in _rows(world).items() if s == ocsp_pki.GOOD_SERIAL}
        assert all(st == int(Status.REVOKED) for st in stored.values())  # the stale "good" was not saved
        for alg in (hashes.SHA1(), hashes.SHA256()):
            resp = parse((await r.answer(der_request(world.ca, ocsp_pki.GOOD_SERIAL, algorithm=alg))).body)
            assert resp.certificate_status is x509_ocsp.OCSPCertStatus.REVOKED
        await r.run_once()  # the follower named it: signed again, revoked
        stored = {h: st for (s, h), (st, _) in _rows(world).items() if s == ocsp_pki.GOOD_SERIAL}
        assert stored == {"sha1": int(Status.REVOKED), "sha256": int(Status.REVOKED)}


class TestSigningProcesses:
    async def test_worker_processes_are_started_before_the_first_batch(self, world):
        """Starting a process forks this whole one: done from a thread at start, not on the
        event loop when the first batch is submitted."""
        import asyncio
        import time

        r = await world.responder(dataclasses.replace(S, sign_workers=2))
        try:
            assert r.signer.pool.mode == "processes"
            deadline = time.monotonic() + 60
            while len(r.signer.pool.pids()) < 2:
                assert time.monotonic() < deadline, r.signer.pool.pids()
                await asyncio.sleep(0.05)
            assert r.stats["signed"] == 0  # nothing was signed to get them started
        finally:
            r.close()

    async def test_worker_processes_sign_and_leave_nothing_behind(self, world):
        import os

        r = await world.responder(dataclasses.replace(S, sign_workers=2))
        assert r.signer.pool.mode == "processes"
        assert await r.run_once(full=True) == len(world.ca.leaves) * len(S.presign_hashes)
        pids = r.signer.pool.pids()
        assert pids and all(p != os.getpid() for p in pids)
        resp = parse((await r.answer(der_request(world.ca, ocsp_pki.REVOKED_SERIAL, algorithm=hashes.SHA256()))).body)
        assert resp.certificate_status is x509_ocsp.OCSPCertStatus.REVOKED
        assert r.stats["signed"] == len(world.ca.leaves) * len(S.presign_hashes)  # answered from memory
        r.close()
        for pid in pids:
            with pytest.raises(ChildProcessError):
                os.waitpid(pid, os.WNOHANG)  # reaped: no orphan, no zombie
