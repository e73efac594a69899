"""The pure layer: DNs, attribute descriptions, filters and the directory snapshot."""
from __future__ import annotations

import pytest
from ldaptor import ldapfilter
from ldaptor.protocols import pureldap as pl

from ldap import dn as dnmod
from ldap import schema
from ldap.decode import from_ldaptor
from ldap.directory import Directory, Entry, NoSuchObject, ResponseCache, Selection
from ldap.filters import compile_filter
from publisher.errors import MalformedInput

from ldap_fixtures import CA_DN, CRL1_DN, ORG, ROOT_DN


class TestDN:
    @pytest.mark.parametrize("a, b", [
        ("cn=Hongkong Post e-Cert CA 2 - 17 CRL1, o=Hongkong Post, c=HK", CRL1_DN),
        ("CN=HONGKONG POST e-cert ca 2 - 17 crl1,O=hongkong post,C=hk", CRL1_DN),
        ("commonName=Hongkong Post e-Cert CA 2 - 17 CRL1;o=Hongkong Post;c=HK", CRL1_DN),
        ("2.5.4.3=Hongkong Post e-Cert CA 2 - 17 CRL1,2.5.4.10=Hongkong Post,2.5.4.6=HK", CRL1_DN),
        ("cn = Hongkong  Post e-Cert CA 2 - 17 CRL1 , o = Hongkong Post , c = HK", CRL1_DN),
        ('cn="Hongkong Post e-Cert CA 2 - 17 CRL1",o="Hongkong Post",c=HK', CRL1_DN),
        (r"cn=Hongkong\20Post e-Cert CA 2 - 17 CRL1,o=Hongkong Post,c=HK", CRL1_DN),
        ("uid=1+cn=A,c=HK", "cn=a+uid=1,c=hk"),
        ("cn=a\\,b,c=HK", "cn=a\\,b,c=hk"),
    ])
    def test_normalise_same(self, a, b):
        assert dnmod.normalise(a) == dnmod.normalise(b)

    def test_normalise_differs(self):
        assert dnmod.normalise("cn=a\\,b,c=HK") != dnmod.normalise("cn=a,b=,c=HK")

    @pytest.mark.parametrize("bad", [
        "cn", "=x", "cn=x,", "cn=x,,c=HK", "cn=x\\", "cn=x\\zz", 'cn="x', "c n=x",
        "cn=#abc", "cn=a<b", b"cn=\xff",
    ])
    def test_invalid(self, bad):
        with pytest.raises(dnmod.InvalidDN) as e:
            dnmod.normalise(bad)
        assert e.value.ldap_result == 34
        assert isinstance(e.value, MalformedInput)

    def test_empty_is_root(self):
        assert dnmod.normalise("") == ""
        assert dnmod.normalise("   ") == ""

    def test_parent(self):
        n = dnmod.normalise("cn=a\\,b,o=x,c=HK")
        assert dnmod.parent(n) == "o=x,c=hk"
        assert dnmod.parent("c=hk") == ""
        assert dnmod.parent("") is None


class TestSchema:
    @pytest.mark.parametrize("text, key, usable", [
        ("certificateRevocationList;binary", "certificaterevocationlist", True),
        ("CERTIFICATEREVOCATIONLIST", "certificaterevocationlist", True),
        ("2.5.4.39", "certificaterevocationlist", True),
        ("2.5.4.39;BINARY", "certificaterevocationlist", True),
        ("authorityRevocationList;binary", "authorityrevocationlist", True),
        ("commonName", "cn", True),
        ("cn;binary", "cn", False),
        ("mail;lang-en", "mail", False),
        ("x-unknown", "x-unknown", True),
    ])
    def test_parse_description(self, text, key, usable):
        d = schema.parse_description(text)
        assert (d.key, d.usable) == (key, usable)

    def test_binary_types_are_sent_with_the_option(self):
        assert schema.wire_name("certificateRevocationList") == (
            "certificaterevocationlist", "certificateRevocationList;binary")
        assert schema.wire_name("userCertificate;binary")[1] == "userCertificate;binary"
        assert schema.wire_name("commonName")[1] == "cn"


def match(directory: Directory, flt, base: str = "c=HK", scope: int = 2) -> list[str]:
    """DNs matching a filter given as text or as ldaptor filter object."""
    if isinstance(flt, str):
        flt = ldapfilter.parseFilter(flt)
    pred, hint = compile_filter(from_ldaptor(flt))
    return [e.dn for e in directory.search(dnmod.normalise(base), scope, pred, hint)]


class TestFilters:
    def test_equality_is_case_insensitive_and_space_folding(self, directory):
        assert match(directory, "(mail=TM.Chan@Example.HK)") == [f"uid=1000,{CA_DN}"]
        assert match(directory, "(cn=chan  tai man)") == [f"uid=1000,{CA_DN}"]
        assert match(directory, "(commonName=Chan Tai Man)") == [f"uid=1000,{CA_DN}"]

    def test_binary_attribute_with_and_without_option(self, directory):
        want = [CA_DN, CRL1_DN]
        assert match(directory, "(certificateRevocationList=*)") == want
        assert match(directory, "(certificateRevocationList;binary=*)") == want
        assert match(directory, pl.LDAPFilter_present(b"2.5.4.39")) == want
        assert match(directory, pl.LDAPFilter_present(b"2.5.4.39;binary")) == want
        assert match(directory, "(authorityRevocationList;binary=*)") == [
            ROOT_DN, "cn=Hongkong Post Root CA 2 ARL,o=Hongkong Post,c=HK"]

    def test_equality_on_der(self, directory, pki):
        cert = pki.users["ky.lee@example.hk"]
        for name in (b"userCertificate;binary", b"userCertificate", b"2.5.4.36"):
            f = pl.LDAPFilter_equalityMatch(
                attributeDesc=pl.LDAPAttributeDescription(name),
                assertionValue=pl.LDAPAssertionValue(cert))
            assert match(directory, f) == [f"uid=1002,{CA_DN}"]

    def test_boolean_operators(self, directory):
        assert match(directory, "(&(objectClass=pkiUser)(|(mail=tm.chan@example.hk)(mail=w.cheung@example.hk)))") == [
            f"uid=1000,{CA_DN}", f"uid=1003,{CA_DN}"]
        assert len(match(directory, "(&(objectClass=pkiUser)(!(mail=tm.chan@example.hk)))")) == 3
        assert match(directory, "(!(objectClass=*))") == []

    def test_substrings(self, directory):
        assert match(directory, "(mail=*wong*)") == [f"uid=1001,{CA_DN}"]
        assert match(directory, "(cn=Hongkong*CRL1)") == [CRL1_DN]
        assert match(directory, "(cn=*2 - 17)") == [CA_DN]
        assert match(directory, "(cn=l*k*y*)") == [f"uid=1002,{CA_DN}"]
        assert match(directory, "(cn=Hong*kong*)") == [ROOT_DN, CA_DN, CRL1_DN,
                                                       "cn=Hongkong Post Root CA 2 ARL,o=Hongkong Post,c=HK"]

    def test_ordering_and_approx(self, directory):
        assert match(directory, "(uid>=1002)") == [f"uid=1002,{CA_DN}", f"uid=1003,{CA_DN}"]
        assert match(directory, "(uid<=1000)") == [f"uid=1000,{CA_DN}"]
        assert match(directory, "(mail~=KY.LEE@example.hk)") == [f"uid=1002,{CA_DN}"]

    @pytest.mark.parametrize("flt", [
        "(userCertificate=0*)", "(userCertificate;binary=*0*)", "(userCertificate;binary=*\\82*)", "(cACertificate=0*)",
        "(certificateRevocationList>=a)", "(certificateRevocationList;binary<=a)", "(certificateRevocationList<=\\ff)",
        "(authorityRevocationList>=\\00)", "(userCertificate<=\\ff)",
    ])
    def test_ordering_and_substrings_on_der_are_undefined(self, directory, flt):
        # RFC 4523 gives the certificate and CRL types no ORDERING or SUBSTR rule: such an
        # item is Undefined (RFC 4511 §4.5.1.7), not a byte comparison of the DER, and stays
        # so under NOT.
        assert match(directory, flt) == []
        assert match(directory, f"(!{flt})") == []
        assert match(directory, f"(|{flt}(uid=1002))") == [f"uid=1002,{CA_DN}"]

    def test_undefined_stays_undefined_under_not(self, directory):
        assert match(directory, "(mail;lang-en=*)") == []
        assert match(directory, "(!(mail;lang-en=x))") == []
        assert match(directory, "(!(cn;binary=x))") == []
        # ...but OR with a true item is true, AND with a false one false.
        assert match(directory, "(|(mail;lang-en=x)(mail=ky.lee@example.hk))") == [f"uid=1002,{CA_DN}"]
        assert len(match(directory, "(!(&(mail;lang-en=x)(objectClass=nothing)))")) == len(directory)

    def test_extensible(self, directory):
        assert match(directory, "(mail:=ky.lee@example.hk)") == [f"uid=1002,{CA_DN}"]
        assert match(directory, "(mail:caseExactMatch:=ky.lee@example.hk)") == []

    def test_index_respects_scope(self, directory):
        assert match(directory, "(mail=ky.lee@example.hk)", base=CA_DN, scope=1) == [f"uid=1002,{CA_DN}"]
        assert match(directory, "(mail=ky.lee@example.hk)", base=ORG, scope=1) == []
        assert match(directory, "(mail=ky.lee@example.hk)", base=ROOT_DN) == []
        assert match(directory, "(mail=ky.lee@example.hk)", base="") == [f"uid=1002,{CA_DN}"]


class TestDirectory:
    def test_lookup_names_the_closest_ancestor(self, directory):
        with pytest.raises(NoSuchObject) as e:
            directory.lookup(dnmod.normalise(f"cn=nobody,uid=1000,{CA_DN}"))
        assert e.value.matched_dn == f"uid=1000,{CA_DN}"
        with pytest.raises(NoSuchObject) as e:
            directory.lookup(dnmod.normalise("o=Elsewhere,c=US"))
        assert e.value.matched_dn == ""

    def test_scopes(self, directory):
        everything = match(directory, "(objectClass=*)")
        assert everything[:2] == ["c=HK", ORG] and len(everything) == len(directory)
        assert match(directory, "(objectClass=*)", base=ORG, scope=1) == [
            ROOT_DN, CA_DN, CRL1_DN, "cn=Hongkong Post Root CA 2 ARL,o=Hongkong Post,c=HK"]
        assert match(directory, "(objectClass=*)", base=CRL1_DN, scope=0) == [CRL1_DN]
        assert match(directory, "(objectClass=*)", base="", scope=1) == ["c=HK"]

    def test_root_dse(self, directory):
        assert directory.naming_contexts == ("c=HK",)
        assert match(directory, "(objectClass=*)", base="", scope=0) == [""]

    def test_duplicates_refused(self):
        with pytest.raises(ValueError):
            Directory.from_entries([("c=HK", {"c": "HK"}), ("C=hk", {"c": "HK"})])

    def test_values_are_bytes_and_deduplicated(self):
        e = Entry.make("cn=x", {"cn": ["x", b"x"], "objectClass": "top"})
        assert e.by_key["cn"].values == (b"x",)
        assert e.by_key["objectclass"].values == (b"top",)

    def test_selection(self):
        assert Selection.from_request([]).all_user
        assert Selection.from_request([b"*", b"cn"]).all_user
        s = Selection.from_request([b"1.1"])
        assert not s.all_user and not s.keys
        s = Selection.from_request([b"2.5.4.39", b"mail", b"cn;binary"])
        assert s.keys == {"certificaterevocationlist", "mail"}


class TestResponseCache:
    def test_bounded_lru(self):
        c = ResponseCache(max_entries=2, max_bytes=1000)
        c.put(b"a", (b"1",))
        c.put(b"b", (b"2",))
        assert c.get(b"a") == (b"1",)
        c.put(b"c", (b"3",))
        assert c.get(b"b") is None and c.get(b"a") and c.get(b"c")

    def test_large_responses_not_kept(self):
        c = ResponseCache(max_entries=10, max_bytes=800)
        c.put(b"a", (b"x" * 200,))
        assert c.get(b"a") is None
