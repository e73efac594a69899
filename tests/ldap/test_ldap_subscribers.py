"""ldap.subscribers, ldap.names, ldap.name_index and the service following the change log:
subscriber entries served from the store answer every search as a directory built whole
from the same store does."""
from __future__ import annotations

import asyncio
import datetime as dt
import tempfile
import time
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ldap import ber, errors, operations
from ldap.build import DirectoryBuilder
from ldap.directory import DirectoryHolder
from ldap.requests import CompareRequest, SearchRequest
from ldap.service import DirectoryService
from ldap.settings import CaLayout, Layout
from ldap.subscribers import EntryCache, StoreDirectory
from publisher.crl import Reason, ScopeKind
from publisher.sqlite_store import SQLiteStore
from publisher.store import Action, NewCert, StatusChange, serial_hex

NOW = dt.datetime(2026, 1, 1, tzinfo=dt.timezone.utc)
CA_NAME = "eCertCA2-17"
BASE = "o=Hongkong Post,c=HK"
CA_DN = f"cn=Hongkong Post e-Cert CA 2 - 17,{BASE}"
CRL1_DN = f"cn=Hongkong Post e-Cert CA 2 - 17 CRL1,{BASE}"
# (cn, mails): shared names, a certificate without CN (its cn is its serial), two mails.
PEOPLE = [
    ("Chan Tai Man", ["tm.chan@example.hk"]),
    ("Chan Tai Man", ["tm.chan2@example.hk"]),
    ("Wong  Siu Ming", ["SM.Wong@example.hk", "wsm@example.hk"]),
    (None, ["anon@example.hk"]),
    ("Lee Ka Yan", []),
    ("Cheung Wai", ["tm.chan@example.hk"]),
]
SERIALS = [0x1000 + i for i in range(len(PEOPLE))] + [0xABCDEF]
CACHE_BOUND = 3


def _name(cn: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COUNTRY_NAME, "HK"),
                      x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Hongkong Post"),
                      x509.NameAttribute(NameOID.COMMON_NAME, cn)])


def _make_pki():
    der = lambda o: o.public_bytes(serialization.Encoding.DER)  # noqa: E731
    rk, ck = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())
    uk = ec.generate_private_key(ec.SECP256R1()).public_key()
    rname, cname = _name("Hongkong Post Root CA 2"), _name("Hongkong Post e-Cert CA 2 - 17")

    def cert(subject, issuer, pub, key, serial, ca=False, mails=()):
        b = (x509.CertificateBuilder().subject_name(subject).issuer_name(issuer).public_key(pub)
             .serial_number(serial).not_valid_before(NOW).not_valid_after(NOW + dt.timedelta(days=365)))
        if ca:
            b = b.add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        if len(mails) > 1:
            b = b.add_extension(x509.SubjectAlternativeName([x509.RFC822Name(m) for m in mails[1:]]),
                                critical=False)
        return der(b.sign(key, hashes.SHA256()))

    users = []
    for serial, (cn, mails) in zip(SERIALS, PEOPLE + [("Ho Man", ["ho@example.hk"])]):
        attrs = ([x509.NameAttribute(NameOID.COMMON_NAME, cn)] if cn else [])
        attrs += [x509.NameAttribute(NameOID.EMAIL_ADDRESS, mails[0])] if mails else []
        users.append(cert(x509.Name(attrs), cname, uk, ck, serial, mails=mails))
    crl = der(x509.CertificateRevocationListBuilder(
        issuer_name=cname, last_update=NOW, next_update=NOW + dt.timedelta(days=1)).sign(ck, hashes.SHA256()))
    return cert(rname, rname, rk.public_key(), rk, 1, True), cert(cname, rname, ck.public_key(), rk, 2, True), \
        users, crl


PKI = _make_pki()
LAYOUT = Layout(cas=(CaLayout("RootCA2"), CaLayout(CA_NAME)))


def _search(base: str, scope: int, flt: tuple, size: int = 0) -> SearchRequest:
    return SearchRequest(base.encode(), scope, 0, size, 0, False, flt, ())


def _searches() -> list:
    out: list = []
    for s in SERIALS:
        dn = f"uid={serial_hex(s)},{CA_DN}"
        out.append(_search(dn, 0, ("present", b"objectClass")))
        out.append(_search(dn.upper(), 2, ("present", b"objectClass")))
        out.append(_search(f"cn=x,{dn}", 0, ("present", b"objectClass")))
        out.append(_search("c=HK", 2, ("eq", b"uid", serial_hex(s).lower().encode())))
        out.append(CompareRequest(dn.encode(), b"mail", b"tm.chan@example.hk"))
    out.append(_search(f"uid=zz,{CA_DN}", 0, ("present", b"objectClass")))
    for cn, mails in PEOPLE:
        for m in mails:
            out.append(_search("c=HK", 2, ("eq", b"mail", m.upper().encode())))
            out.append(_search(CA_DN, 1, ("and", [("eq", b"mail", m.encode()),
                                                  ("present", b"userCertificate;binary")])))
        if cn:
            out.append(_search("c=HK", 2, ("eq", b"cn", cn.encode())))
            out.append(_search(BASE, 2, ("eq", b"sn", cn.lower().encode())))
    out += [
        _search("c=HK", 2, ("eq", b"cn", b"00abcdef")),
        _search(CA_DN, 1, ("present", b"objectClass")),
        _search(CA_DN, 2, ("present", b"objectClass")),
        _search("c=HK", 2, ("present", b"objectClass"), size=4),
        _search("", 2, ("present", b"objectClass")),
        _search("c=HK", 2, ("eq", b"objectClass", b"pkiUser")),
        _search("c=HK", 2, ("eq", b"objectClass", b"pkiCA")),
        _search("c=HK", 2, ("present", b"cACertificate")),
        _search("c=HK", 2, ("eq", b"userCertificate;binary", PKI[2][0])),
        _search("c=HK", 2, ("sub", b"mail", None, [b"chan"], None)),
        _search("c=HK", 2, ("or", [("eq", b"cn", b"lee ka yan"), ("eq", b"objectClass", b"cRLDistributionPoint")])),
        _search(CRL1_DN, 0, ("present", b"objectClass")),
        _search("c=HK", 2, ("present", b"certificateRevocationList")),
        _search("c=HK", 1, ("present", b"objectClass")),
    ]
    return out


SEARCHES = _searches()


async def answer(directory, req) -> tuple:
    """Every protocolOp the request gets, or the error it fails with."""
    try:
        if isinstance(req, CompareRequest):
            job = operations.Compare(directory, req)
        else:
            job = operations.plan_search(directory, req, size_limit=1000, now=time.monotonic)
        ops: list[bytes] = []
        for _ in range(10_000):
            ops += job.run(1 << 30)
            if job.code is not None:
                return tuple(ops)
            assert job.waiting is not None
            await job.waiting
        raise AssertionError("search did not finish")
    except Exception as e:
        # As the server answers a request that fails before it starts (`_fail`).
        code, matched, message = errors.result_of(e)
        tag = ber.COMPARE_RESPONSE if isinstance(req, CompareRequest) else ber.SEARCH_RESULT_DONE
        return (ber.ldap_result(tag, code, matched.encode(), message.encode()),)


async def open_store(path: Path) -> tuple[SQLiteStore, int]:
    store = SQLiteStore(path)
    await store.open()
    root, ca, _, _ = PKI
    for name, der in (("RootCA2", root), (CA_NAME, ca)):
        c = x509.load_der_x509_certificate(der)
        issuer = await store.put_issuer(name, der, c.subject.public_bytes(), name.encode())
    return store, issuer.id


async def apply(store: SQLiteStore, issuer_id: int, op: str, k: int) -> None:
    serial = SERIALS[k]
    cert = await store.certificate(issuer_id, serial)
    if op == "add":
        if cert is None:
            der = PKI[2][k]
            await store.add_certificates([NewCert(issuer_id, serial, der, None, NOW, NOW, None, False)], at=NOW)
        return
    if op == "crl":
        scope = await store.ensure_scope(issuer_id, ScopeKind.FULL, "", "eCertCA2-17CRL1")
        number = await store.reserve_crl_number(scope)
        await store.record_crl(scope, number, NOW, NOW, PKI[3] + bytes([k]), entries=0, covered_event=0,
                               issued_at=NOW)
        return
    action = {"revoke": Action.REVOKE, "hold": Action.HOLD, "release": Action.RELEASE}[op]
    allowed = {Action.REVOKE: (0, 2), Action.HOLD: (0,), Action.RELEASE: (2,)}[action]
    if cert is None or cert.status not in allowed:
        return  # not allowed by the status rules
    await store.change_status(StatusChange(issuer_id, serial, action, Reason.keyCompromise if action is Action.REVOKE
                                           else None, NOW, None, None if action is Action.RELEASE else b"x"))


OPS = st.lists(st.tuples(st.sampled_from(["add", "add", "revoke", "hold", "release", "crl"]),
                         st.integers(0, len(SERIALS) - 1)), min_size=1, max_size=14)


class TestIncrementalEqualsWhole:
    @settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.too_slow])
    @given(ops=OPS, checkpoints=st.sets(st.integers(0, 13), max_size=4))
    def test_random_changes(self, ops, checkpoints):
        async def body():
            with tempfile.TemporaryDirectory() as t:
                store, issuer_id = await open_store(Path(t) / "s.sqlite")
                try:
                    holder = DirectoryHolder()
                    service = DirectoryService(store, LAYOUT, holder, 0.5, entry_cache=CACHE_BOUND)
                    await service.start()
                    for i, (op, k) in enumerate(ops):
                        await apply(store, issuer_id, op, k)
                        if i in checkpoints or i == len(ops) - 1:
                            await service.refresh()
                            whole = await DirectoryBuilder(LAYOUT).build(store)
                            view = holder.current
                            assert isinstance(view, StoreDirectory) and view.names_ready
                            for req in SEARCHES:
                                assert await answer(view, req) == await answer(whole, req), req
                            assert len(service.cache) <= CACHE_BOUND
                finally:
                    await store.close()

        asyncio.run(body())


async def test_a_status_change_shows_after_the_change_log_moves(tmp_path):
    store, issuer_id = await open_store(tmp_path / "s.sqlite")
    try:
        for k in (0, 1):
            await apply(store, issuer_id, "add", k)
        holder = DirectoryHolder()
        service = DirectoryService(store, LAYOUT, holder, 0.5)
        await service.start()
        await service.refresh()
        dns = [f"uid={serial_hex(SERIALS[k])},{CA_DN}" for k in (0, 1)]
        before = [await answer(holder.current, _search(dn, 0, ("present", b"objectClass"))) for dn in dns]
        assert all(len(a) == 2 for a in before)  # the entry and the done
        assert len(service.cache) == 2  # read by DN, kept
        await apply(store, issuer_id, "revoke", 0)
        await apply(store, issuer_id, "hold", 1)
        # The cache serves the old entries until the change log is applied ...
        assert await answer(holder.current, _search(dns[0], 0, ("present", b"objectClass"))) == before[0]
        assert await service.refresh()
        # ... then the revoked one is gone, the held one stays (a hold is temporary).
        gone = await answer(holder.current, _search(dns[0], 0, ("present", b"objectClass")))
        assert gone == (ber.ldap_result(ber.SEARCH_RESULT_DONE, 32, CA_DN.encode()),)
        assert await answer(holder.current, _search(dns[1], 0, ("present", b"objectClass"))) == before[1]
        assert len(service.cache) == 1
    finally:
        await store.close()


async def test_name_index_catches_up_in_bounded_steps(tmp_path):
    """A store filled before the index (or by another process) is read in bounded steps;
    meanwhile a name search answers unavailable, never an incomplete list."""
    store, issuer_id = await open_store(tmp_path / "s.sqlite")
    try:
        await store.add_certificates([NewCert(issuer_id, s, der, None, NOW, NOW, None, False)
                                      for s, der in zip(SERIALS, PKI[2])], at=NOW)
        holder = DirectoryHolder()
        service = DirectoryService(store, LAYOUT, holder, 0.5)
        await service.start()
        assert not service.names_ready
        req = _search("c=HK", 2, ("eq", b"mail", b"tm.chan@example.hk"))
        refused = await answer(holder.current, req)
        assert refused == (ber.ldap_result(ber.SEARCH_RESULT_DONE, 52, b"",
                                           b"the name index is being built; try again shortly"),)
        # By DN needs no index.
        assert len(await answer(holder.current, _search(f"uid={serial_hex(SERIALS[0])},{CA_DN}", 0,
                                                        ("present", b"objectClass")))) == 2
        from ldap import name_index
        assert not await name_index.catch_up(store, max_certs=2, page=2)
        assert await store.name_index_position() == (2, len(SERIALS))
        await service.refresh()
        assert service.names_ready
        whole = await DirectoryBuilder(LAYOUT).build(store)
        assert await answer(holder.current, req) == await answer(whole, req)
        assert len(await answer(whole, req)) == 3  # two certificates carry that mail
    finally:
        await store.close()


def test_entry_cache_is_bounded_and_epoch_guarded():
    from ldap.directory import Entry
    c = EntryCache(2)
    e = Entry.make("uid=01,c=HK", {"uid": "01"})
    for k in range(5):
        c.put((1, k), e, c.epoch)
    assert len(c) == 2 and c.get((1, 4)) is e and c.get((1, 0)) is None
    old = c.epoch
    c.drop((1, 4))
    c.put((1, 7), e, old)  # read before the drop: not kept
    assert c.get((1, 7)) is None and c.get((1, 4)) is None
