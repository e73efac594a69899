"""ldap.build and ldap.service: the directory made from config and the store."""
from __future__ import annotations

import shutil

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding

from ldap import dn as dnmod
from ldap.build import CaLayout, DirectoryBuilder, Layout, PublishedCrl, make_entries
from ldap.directory import Directory, DirectoryHolder
from ldap.service import DirectoryService
from publisher.root import load_settings
from publisher.crl import ScopeKind
from publisher.errors import ConfigError
from publisher.sqlite_store import SQLiteStore
from publisher.store import CrlRecord, Issuer, Scope, serial_hex

from ldap_fixtures import NOW

CRL = "certificateRevocationList;binary"
ARL = "authorityRevocationList;binary"


def issuer(id_: int, name: str, der: bytes) -> Issuer:
    c = x509.load_der_x509_certificate(der)
    return Issuer(id_, name, c.subject.public_bytes(), b"k%d" % id_, der)


def crl(id_: int, issuer_id: int, kind: ScopeKind, name: str, der: bytes) -> PublishedCrl:
    scope = Scope(id_, issuer_id, kind, "", name)
    return PublishedCrl(CrlRecord(id_, scope, 1, NOW, NOW, "x", len(der), 0, 0, NOW, "signed"), der)


class TestMakeEntries:
    def test_cps_layout(self, pki):
        layout = Layout(cas=(CaLayout("RootCA2"), CaLayout("eCertCA2-17")))
        issuers = [issuer(1, "RootCA2", pki.root), issuer(2, "eCertCA2-17", pki.ca)]
        crls = [crl(10, 2, ScopeKind.FULL, "eCertCA2-17CRL1", pki.crl),
                crl(11, 2, ScopeKind.PARTITION, "eCertCA2-17CRL2", b"partition"),
                crl(12, 2, ScopeKind.PARTITION, "odd-name", b"odd"),
                crl(13, 1, ScopeKind.ARL, "RootCA2ARL", pki.arl)]
        suffix, entries = make_entries(layout, issuers, crls, {})
        d = Directory(entries, naming_contexts=[suffix])
        assert suffix == "c=HK"
        assert [e.dn for e in d] == [
            "c=HK", "o=Hongkong Post,c=HK",
            "cn=Hongkong Post Root CA 2,o=Hongkong Post,c=HK",
            "cn=Hongkong Post e-Cert CA 2 - 17,o=Hongkong Post,c=HK",
            "cn=Hongkong Post Root CA 2 ARL,o=Hongkong Post,c=HK",
            "cn=Hongkong Post e-Cert CA 2 - 17 CRL1,o=Hongkong Post,c=HK",
            "cn=Hongkong Post e-Cert CA 2 - 17 CRL2,o=Hongkong Post,c=HK",
            "cn=odd-name,o=Hongkong Post,c=HK",
        ]
        root = d.get("cn=Hongkong Post Root CA 2,o=Hongkong Post,c=HK")
        assert root.by_key["authorityrevocationlist"].values == (pki.arl,)
        assert root.by_key["authorityrevocationlist"].name == ARL
        assert root.by_key["cacertificate"].values == (pki.root,)
        ca = d.get("cn=Hongkong Post e-Cert CA 2 - 17,o=Hongkong Post,c=HK")
        assert ca.by_key["certificaterevocationlist"].values == (pki.crl,)
        assert b"pkica" in {v.lower() for v in ca.by_key["objectclass"].values}
        crl1 = d.get("cn=Hongkong Post e-Cert CA 2 - 17 CRL1, o=Hongkong Post, c=HK")
        assert crl1.by_key["certificaterevocationlist"].values == (pki.crl,)
        assert crl1.by_key["cn"].values == (b"Hongkong Post e-Cert CA 2 - 17 CRL1",)
        arl = d.get("cn=Hongkong Post Root CA 2 ARL,o=Hongkong Post,c=HK")
        assert arl.by_key["authorityrevocationlist"].values == (pki.arl,)

    def test_configured_names(self, pki):
        layout = Layout(
            suffix="dc=example,dc=hk", base="ou=PKI,dc=example,dc=hk",
            crl_dns={"eCertCA2-17CRL2": "cn=Partition Two,ou=PKI,dc=example,dc=hk"},
            cas=(CaLayout("eCertCA2-17", dn="cn=Issuing,ou=PKI,dc=example,dc=hk",
                          crl_dn="cn=Full CRL,ou=PKI,dc=example,dc=hk"),))
        crls = [crl(10, 2, ScopeKind.FULL, "eCertCA2-17CRL1", pki.crl),
                crl(11, 2, ScopeKind.PARTITION, "eCertCA2-17CRL2", b"p")]
        suffix, entries = make_entries(layout, [issuer(2, "eCertCA2-17", pki.ca)], crls, {})
        assert suffix == "dc=example,dc=hk"
        assert [e.dn for e in entries] == [
            "dc=example,dc=hk", "ou=PKI,dc=example,dc=hk", "cn=Issuing,ou=PKI,dc=example,dc=hk",
            "cn=Full CRL,ou=PKI,dc=example,dc=hk", "cn=Partition Two,ou=PKI,dc=example,dc=hk"]


@pytest.fixture(scope="module")
def demo(tmp_path_factory, demo_factory):
    return demo_factory(tmp_path_factory.mktemp("ldapbuild"), subscribers=12)


@pytest.fixture
def demo_copy(demo, tmp_path):
    d = tmp_path / "demo"
    shutil.copytree(demo.dir, d)
    return d


def demo_pem_der(path) -> bytes:
    return x509.load_pem_x509_certificate(path.read_bytes()).public_bytes(Encoding.DER)


class TestDirectoryBuilder:
    async def test_demo(self, demo_copy):
        settings = load_settings(demo_copy / "pkirepo.toml")
        layout = settings.ldap.layout
        async with SQLiteStore(settings.store_path) as store:
            d = await DirectoryBuilder(layout).build(store)
            current = {r.scope.name: await store.crl_der(r.id) for r in await store.current_crls()}
        assert d.naming_contexts == ("c=HK",)
        base = "o=Hongkong Post Demo,c=HK"
        crl1 = d.get(f"cn=Demo e-Cert CA 2 - 17 CRL1,{base}")
        assert crl1.by_key["certificaterevocationlist"].values == (current["eCertCA2-17CRL1"],)
        root = d.get(f"cn=Demo Root CA 2,{base}")
        assert root.by_key["authorityrevocationlist"].values == (current["RootCA2ARL"],)
        for k in (2, 3, 4):
            e = d.get(f"cn=Demo e-Cert CA 2 - 17 CRL{k},{base}")
            assert e.by_key["certificaterevocationlist"].values == (current[f"eCertCA2-17CRL{k}"],)
        pki = demo_copy / "pki"
        users = {e.by_key["usercertificate"].values[0]: e for e in d if "usercertificate" in e.by_key}
        good, held, revoked = (demo_pem_der(pki / f) for f in ("good.pem", "held.pem", "revoked.pem"))
        assert good in users and held in users and revoked not in users
        g = users[good]
        assert dnmod.parent(g.ndn) == dnmod.normalise(f"cn=Demo e-Cert CA 2 - 17,{base}")
        mail = x509.load_der_x509_certificate(good).subject.get_attributes_for_oid(
            x509.NameOID.EMAIL_ADDRESS)[0].value
        assert g.by_key["mail"].values == (mail.encode(),)

    async def test_subscribers_can_be_left_out(self, demo_copy):
        cfg = demo_copy / "pkirepo.toml"
        text = cfg.read_text()
        cfg.write_text(text.replace('name = "eCertCA2-17"', 'name = "eCertCA2-17"\nldap_subscribers = false'))
        settings = load_settings(cfg)
        layout = settings.ldap.layout
        async with SQLiteStore(settings.store_path) as store:
            d = await DirectoryBuilder(layout).build(store)
        assert not any("usercertificate" in e.by_key for e in d)
        assert d.get("cn=Demo e-Cert CA 2 - 17 CRL1,o=Hongkong Post Demo,c=HK") is not None

    async def test_refresh_follows_the_change_token(self, demo_copy):
        from publisher.clock import SystemClock
        from publisher.service import Repository, load_signers

        settings = load_settings(demo_copy / "pkirepo.toml")
        layout = settings.ldap.layout
        async with SQLiteStore(settings.store_path) as store:
            holder = DirectoryHolder()
            service = DirectoryService(store, layout, holder, 0.5)
            assert await service.refresh()
            first = holder.current
            assert not await service.refresh()  # nothing changed: same snapshot
            assert holder.current is first
            async with SQLiteStore(settings.store_path) as other:  # as `pkirepo publish` would
                repo = Repository(settings, store=other, signers=load_signers(settings),
                                  clock=SystemClock())
                await repo.sync_issuers()
                await repo.issue_due(force=True)
            assert await service.refresh()
            second = holder.current
            assert second is not first
            dn = "cn=Demo e-Cert CA 2 - 17 CRL1,o=Hongkong Post Demo,c=HK"
            assert first.get(dn).by_key["certificaterevocationlist"].values != \
                second.get(dn).by_key["certificaterevocationlist"].values
            # Subscriber entries are not in the snapshot: they are read from the store.
            assert not any("usercertificate" in e.by_key for e in second)
            good = demo_pem_der(demo_copy / "pki" / "good.pem")
            serial = x509.load_der_x509_certificate(good).serial_number
            issuer = next(i for i in await store.issuers() if i.name == "eCertCA2-17")
            assert await store.certificate(issuer.id, serial) is not None
            hits = [e async for e in _entries(second.candidates("c=hk", 2, ("uid", serial_hex(serial).lower())))]
            assert [e.by_key["usercertificate"].values[0] for e in hits] == [good]


async def _entries(candidates):
    """The entries of a directory's candidates, waiting out its store reads."""
    from ldap.directory import Wait
    for item in candidates:
        if isinstance(item, Wait):
            await item.future
            continue
        yield item


class TestConfig:
    def settings(self, demo_copy, ldap_section: str, ca_extra: str = ""):
        cfg = demo_copy / "pkirepo.toml"
        text = cfg.read_text()
        head, sep, rest = text.partition("[ldap]\n")
        listen_line, _, rest = rest.partition("\n")
        text = head + sep + listen_line + "\n" + ldap_section + "\n" + rest
        if ca_extra:
            text = text.replace('name = "eCertCA2-17"', 'name = "eCertCA2-17"\n' + ca_extra)
        cfg.write_text(text)
        return load_settings(cfg)

    def test_keys_read(self, demo_copy):
        s = self.settings(demo_copy, 'size_limit = 5\ntime_limit = 2.5\nmax_pdu = 4096\n'
                          'idle_timeout = 30\nmax_connections = 9\npoll_interval = 0.25\n'
                          'max_filter_items = 40\nmax_filter_depth = 3\nslice_seconds = 0.005\n'
                          'suffix = "c=HK"\nbase = "o=Hongkong Post,c=HK"\n'
                          '[ldap.crl_dns]\n"eCertCA2-17CRL2" = "cn=Two,o=Hongkong Post,c=HK"',
                          'ldap_dn = "cn=Issuing,o=Hongkong Post,c=HK"\nldap_subscribers = false')
        ls, layout = s.ldap, s.ldap.layout
        assert (ls.size_limit, ls.time_limit, ls.max_pdu, ls.idle_timeout, ls.max_connections,
                ls.poll_interval) == (5, 2.5, 4096, 30, 9, 0.25)
        assert (ls.max_filter_items, ls.max_filter_depth, ls.slice_seconds) == (40, 3, 0.005)
        assert layout.base == "o=Hongkong Post,c=HK"
        assert layout.crl_dns == {"eCertCA2-17CRL2": "cn=Two,o=Hongkong Post,c=HK"}
        assert layout.ca("eCertCA2-17") == CaLayout("eCertCA2-17", "cn=Issuing,o=Hongkong Post,c=HK",
                                                    None, None, False)

    @pytest.mark.parametrize("section, ca_extra, words", [
        ("sizelimit = 5", "", "unknown key(s): sizelimit"),
        ('base = "not a dn"', "", "ldap.base"),
        ('suffix = "c=HK"\nbase = "o=X,c=US"', "", "not under the suffix"),
        ("max_pdu = 0", "", "max_pdu"),
        ("max_filter_depth = 65", "", "max_filter_depth"),
        ("max_filter_items = 0", "", "max_filter_items"),
        ("slice_seconds = 0", "", "slice_seconds"),
        ('size_limit = "many"', "", "size_limit"),
        ("", 'ldap_crl_dn = "oops"', "ca[1].ldap_crl_dn"),
        ("", 'ldap_subscribers = "no"', "ldap_subscribers"),
    ])
    def test_errors_name_the_key(self, demo_copy, section, ca_extra, words):
        with pytest.raises(ConfigError) as e:
            self.settings(demo_copy, section, ca_extra)
        assert words in e.value.message

    def test_listen_address(self, demo_copy):
        s = load_settings(demo_copy / "pkirepo.toml")
        assert s.ldap.listening_on("127.0.0.1:389").listen == "127.0.0.1:389"
        assert s.ldap.listening_on(None).listen == s.ldap.listen
        assert 'listen = "' + s.ldap.listen + '"' in (demo_copy / "pkirepo.toml").read_text()
        with pytest.raises(ConfigError):
            s.ldap.listening_on("nonsense")


def test_configured_rdns_are_in_their_entries(pki):
    layout = Layout(cas=(CaLayout("eCertCA2-17", dn="cn=Issuing,o=Hongkong Post,c=HK",
                                  crl_dn="ou=Full CRL,o=Hongkong Post,c=HK"),))
    crls = [crl(10, 2, ScopeKind.FULL, "eCertCA2-17CRL1", pki.crl)]
    _, entries = make_entries(layout, [issuer(2, "eCertCA2-17", pki.ca)], crls, {})
    d = Directory(entries)
    ca = d.get("cn=Issuing,o=Hongkong Post,c=HK")
    assert set(ca.by_key["cn"].values) == {b"Hongkong Post e-Cert CA 2 - 17", b"Issuing"}
    dp = d.get("ou=Full CRL,o=Hongkong Post,c=HK")
    assert dp.by_key["ou"].values == (b"Full CRL",) and dp.by_key["cn"].values == (b"Full CRL",)
