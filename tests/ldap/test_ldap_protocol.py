"""DirectoryProtocol driven without a socket, through Twisted's StringTransport and a fake
clock (ldaptor's test_server.py style).  Requests are encoded and responses decoded with
ldaptor's codec, independently of the server's hand-written BER."""
from __future__ import annotations

import pytest
from ldaptor.protocols import pureber
from ldaptor.protocols import pureldap as pl
from twisted.internet.task import Clock

from ldap.codes import NOTICE_OF_DISCONNECTION, START_TLS, WHO_AM_I
from ldap.directory import Directory
from ldap.settings import LdapSettings

from ldap_fixtures import ARL_DN, CA_DN, CRL1_DN, ORG, ROOT_DN
from ldap_wire import done, entries, msg, replies, search, text

CRL = "certificateRevocationList;binary"


def ask(session, op, mid=1, controls=None):
    session.send(msg(op, mid, controls))
    return replies(session.take())


def notice(rs):
    assert len(rs) == 1 and rs[0].id == 0
    op = rs[0].op
    assert isinstance(op, pl.LDAPExtendedResponse)
    assert text(op.responseName) == NOTICE_OF_DISCONNECTION.decode()
    return op


class TestBind:
    @pytest.mark.parametrize("dn, pw, code", [
        (b"", b"", 0),                        # anonymous
        (b"cn=someone,c=HK", b"", 0),         # unauthenticated: empty credentials
        (b"cn=someone,c=HK", b"secret", 49),  # any password: invalidCredentials
        (b"", b"secret", 49),
        (b"not a dn", b"", 34),
    ])
    def test_simple(self, session, dn, pw, code):
        [r] = ask(session, pl.LDAPBindRequest(version=3, dn=dn, auth=pw))
        assert isinstance(r.op, pl.LDAPBindResponse) and r.code == code and r.id == 1

    def test_sasl_not_supported(self, session):
        [r] = ask(session, pl.LDAPBindRequest(dn=b"", auth=(b"EXTERNAL", None), sasl=True))
        assert r.code == 7  # authMethodNotSupported

    def test_ldapv2_refused(self, session):
        [r] = ask(session, pl.LDAPBindRequest(version=2, dn=b"", auth=b""))
        assert r.code == 2


class TestSearch:
    def test_crl_entry_base(self, session, pki):
        rs = ask(session, search(CRL1_DN, scope=0, attrs=[CRL]), mid=7)
        [e] = entries(rs)
        assert e.dn == CRL1_DN and e.id == 7
        assert e.attrs == {CRL: [pki.crl]}
        assert done(rs).code == 0 and done(rs).id == 7

    @pytest.mark.parametrize("attr", [
        "certificateRevocationList", "CERTIFICATEREVOCATIONLIST;Binary", "2.5.4.39",
        "2.5.4.39;binary"])
    def test_binary_option_added_whatever_the_request(self, session, pki, attr):
        [e] = entries(ask(session, search(CRL1_DN, scope=0, attrs=[attr])))
        assert e.attrs == {CRL: [pki.crl]}

    def test_base_dn_forms(self, session):
        for base in ("cn=Hongkong Post e-Cert CA 2 - 17 CRL1, o=Hongkong Post, c=HK",
                     "CN=HONGKONG POST E-CERT CA 2 - 17 CRL1,O=HONGKONG POST,C=HK"):
            [e] = entries(ask(session, search(base, scope=0, attrs=["1.1"])))
            assert e.dn == CRL1_DN and e.attrs == {}

    def test_arl_on_the_root(self, session, pki):
        [e] = entries(ask(session, search(ROOT_DN, 0, "(objectClass=pkiCA)",
                                          ["authorityRevocationList", "cACertificate"])))
        assert e.attrs == {"cACertificate;binary": [pki.root],
                           "authorityRevocationList;binary": [pki.arl]}

    def test_subtree_by_mail(self, session, pki):
        rs = ask(session, search("c=HK", 2, "(mail=KY.Lee@example.HK)",
                                 ["userCertificate;binary", "mail", "cn"]))
        [e] = entries(rs)
        assert e.dn == f"uid=1002,{CA_DN}"
        assert e.attrs == {"cn": [b"Lee Ka Yan"], "mail": [b"ky.lee@example.hk"],
                           "userCertificate;binary": [pki.users["ky.lee@example.hk"]]}

    def test_one_level(self, session):
        rs = ask(session, search(ORG, 1, attrs=["1.1"]))
        assert [e.dn for e in entries(rs)] == [ROOT_DN, CA_DN, CRL1_DN, ARL_DN]

    def test_star_and_types_only(self, session):
        [e] = entries(ask(session, search(CRL1_DN, 0, attrs=["*"], types_only=True)))
        assert e.attrs == {"objectClass": [], "cn": [], CRL: []}
        [e] = entries(ask(session, search(CRL1_DN, 0)))
        assert set(e.attrs) == {"objectClass", "cn", CRL} and e.attrs[CRL]

    def test_root_dse(self, session):
        [e] = entries(ask(session, search("", 0, attrs=["namingContexts", "supportedLDAPVersion"])))
        assert e.dn == "" and e.attrs == {"namingContexts": [b"c=HK"], "supportedLDAPVersion": [b"3"]}
        [e] = entries(ask(session, search("", 0, attrs=["+"])))
        assert e.attrs["namingContexts"] == [b"c=HK"]

    def test_no_such_object_with_matched_dn(self, session):
        rs = ask(session, search(f"cn=Nobody,{CA_DN}", 0))
        assert len(rs) == 1 and done(rs).code == 32
        assert text(done(rs).op.matchedDN) == CA_DN
        rs = ask(session, search("o=Other,c=US", 2))
        assert done(rs).code == 32 and text(done(rs).op.matchedDN) == ""

    def test_invalid_base(self, session):
        rs = ask(session, search("this is not a DN", 0))
        assert done(rs).code == 34

    def test_client_size_limit(self, session):
        rs = ask(session, search("c=HK", 2, "(objectClass=pkiUser)", ["1.1"], size=2))
        assert len(entries(rs)) == 2 and done(rs).code == 4
        rs = ask(session, search("c=HK", 2, "(objectClass=pkiUser)", ["1.1"], size=4))
        assert len(entries(rs)) == 4 and done(rs).code == 0  # exactly the limit: success

    def test_server_size_limit(self, session_factory):
        s = session_factory(LdapSettings(size_limit=3))
        rs = ask(s, search("c=HK", 2, attrs=["1.1"]))
        assert len(entries(rs)) == 3 and done(rs).code == 4
        rs = ask(s, search("c=HK", 2, attrs=["1.1"], size=10))  # the server's limit holds
        assert len(entries(rs)) == 3 and done(rs).code == 4

    def test_time_limit(self, session_factory):
        """One entry per turn of the loop; the fake clock moves between turns."""
        clock = Clock()
        s = session_factory(LdapSettings(slice_entries=1, time_limit=5), clock=clock)
        s.send(msg(search("c=HK", 2, attrs=["1.1"], time=2)))
        first = replies(s.take())
        assert len(entries(first)) == 1 and not any(
            isinstance(r.op, pl.LDAPSearchResultDone) for r in first)
        clock.advance(2.5)  # the next slice runs past the client's limit
        rs = replies(s.take())
        assert entries(rs) == [] and done(rs).code == 3
        # within the limit, the same search completes
        s.send(msg(search("c=HK", 2, attrs=["1.1"], time=2), 2))
        clock.advance(1)
        rs = replies(s.take())
        assert done(rs).code == 0 and done(rs).id == 2

    def test_server_time_limit(self, session_factory):
        clock = Clock()
        s = session_factory(LdapSettings(slice_entries=1, time_limit=1), clock=clock)
        s.send(msg(search("c=HK", 2, attrs=["1.1"], time=100)))
        s.take()
        clock.advance(2)
        assert done(replies(s.take())).code == 3

    def test_filter_on_binary_attribute(self, session):
        rs = ask(session, search("c=HK", 2, "(certificateRevocationList=*)", ["1.1"]))
        assert [e.dn for e in entries(rs)] == [CA_DN, CRL1_DN]

    def test_critical_control_refused(self, session):
        rs = ask(session, search(CRL1_DN, 0), controls=[(b"1.2.840.113556.1.4.319", True, b"\x30\x00")])
        assert done(rs).code == 12
        rs = ask(session, search(CRL1_DN, 0), controls=[(b"1.2.840.113556.1.4.319", False, b"\x30\x00")])
        assert done(rs).code == 0 and len(entries(rs)) == 1

    def test_repeated_search_answers_the_same(self, session):
        first = ask(session, search("c=HK", 2, "(mail=*example.hk)"), mid=3)
        again = ask(session, search("c=HK", 2, "(mail=*example.hk)"), mid=4)
        assert [(r.dn, r.attrs) for r in entries(first)] == [(r.dn, r.attrs) for r in entries(again)]
        assert {r.id for r in again} == {4}
        assert len(session.factory.cache) >= 1

    def test_pipelined_and_fragmented(self, session):
        data = msg(search(CRL1_DN, 0, attrs=["1.1"]), 1) + msg(search(CA_DN, 0, attrs=["1.1"]), 2)
        for i in range(len(data)):
            session.send(data[i:i + 1])
        rs = replies(session.take())
        assert [(r.id, type(r.op).__name__) for r in rs] == [
            (1, "LDAPSearchResultEntry"), (1, "LDAPSearchResultDone"),
            (2, "LDAPSearchResultEntry"), (2, "LDAPSearchResultDone")]


class TestSnapshots:
    def test_swap_is_seen_by_the_next_operation(self, session, entries):
        ask(session, search(CRL1_DN, 0, attrs=[CRL]))  # warm the cache of the old snapshot
        changed = [(dn, dict(a)) for dn, a in entries]
        for dn, a in changed:
            if dn == CRL1_DN:
                a["certificateRevocationList;binary"] = b"new CRL"
        session.holder.swap(Directory.from_entries(changed))
        [e] = entries_of(ask(session, search(CRL1_DN, 0, attrs=[CRL])))
        assert e.attrs == {CRL: [b"new CRL"]}

    def test_search_in_progress_keeps_its_snapshot(self, session_factory, entries, directory):
        clock = Clock()
        s = session_factory(LdapSettings(slice_entries=1), clock=clock)
        s.send(msg(search("c=HK", 2, attrs=["1.1"]), 1))
        s.holder.swap(Directory.from_entries(entries[:2]))  # most entries gone
        for _ in range(len(directory) + 1):
            clock.advance(0)
        rs = replies(s.take())
        assert len(entries_of(rs)) == len(directory) and done(rs).code == 0
        s.send(msg(search("c=HK", 2, attrs=["1.1"]), 2))
        clock.advance(0)
        rs = replies(s.take())
        assert len(entries_of(rs)) == 2 and done(rs).code == 0


def entries_of(rs):
    return entries(rs)


class TestReadOnly:
    @pytest.mark.parametrize("op, response", [
        (pl.LDAPAddRequest(entry=CRL1_DN + "x", attributes=[
            (pl.LDAPAttributeDescription("cn"), pureber.BERSet([pl.LDAPAttributeValue("x")]))]),
         pl.LDAPAddResponse),
        (pl.LDAPDelRequest(entry=CRL1_DN), pl.LDAPDelResponse),
        (pl.LDAPModifyRequest(object=CRL1_DN, modification=[
            pureber.BERSequence([pureber.BEREnumerated(2), pureber.BERSequence([
                pl.LDAPAttributeDescription("cn"), pureber.BERSet([pl.LDAPAttributeValue("y")])])])]),
         pl.LDAPModifyResponse),
        (pl.LDAPModifyDNRequest(entry=CRL1_DN, newrdn="cn=renamed", deleteoldrdn=1),
         pl.LDAPModifyDNResponse),
    ])
    def test_writes_refused(self, session, pki, op, response):
        [r] = ask(session, op, mid=5)
        assert isinstance(r.op, response) and r.code == 50 and r.id == 5
        [e] = entries(ask(session, search(CRL1_DN, 0, attrs=["*"])))
        assert e.attrs[CRL] == [pki.crl] and e.attrs["cn"] == [b"Hongkong Post e-Cert CA 2 - 17 CRL1"]

    def test_password_modify_refused(self, session):
        [r] = ask(session, pl.LDAPPasswordModifyRequest(userIdentity=CRL1_DN, newPasswd=b"x"))
        assert isinstance(r.op, pl.LDAPExtendedResponse) and r.code == 50

    @pytest.mark.parametrize("oid", [START_TLS, b"1.2.3.4"])
    def test_unknown_extended_operation(self, session, oid):
        [r] = ask(session, pl.LDAPExtendedRequest(requestName=oid))
        assert isinstance(r.op, pl.LDAPExtendedResponse) and r.code == 2
        assert not session.closed

    def test_who_am_i(self, session):
        [r] = ask(session, pl.LDAPExtendedRequest(requestName=WHO_AM_I))
        assert r.code == 0

    @pytest.mark.parametrize("dn, attr, value, code", [
        (CRL1_DN, "cn", b"HONGKONG POST E-CERT CA 2 - 17 CRL1", 6),
        (CRL1_DN, "cn", b"something else", 5),
        (CRL1_DN, "mail", b"x", 16),
        (f"cn=nobody,{ORG}", "cn", b"x", 32),
    ])
    def test_compare(self, session, dn, attr, value, code):
        [r] = ask(session, pl.LDAPCompareRequest(
            entry=dn, ava=pl.LDAPAttributeValueAssertion(
                pl.LDAPAttributeDescription(attr), pl.LDAPAssertionValue(value))))
        assert isinstance(r.op, pl.LDAPCompareResponse) and r.code == code


class TestSession:
    def test_unbind_closes(self, session):
        session.send(msg(pl.LDAPUnbindRequest()))
        assert session.closed and session.take() == b""

    def test_abandon_stops_a_search(self, session_factory):
        clock = Clock()
        s = session_factory(LdapSettings(slice_entries=1), clock=clock)
        s.send(msg(search("c=HK", 2, attrs=["1.1"]), 1))
        s.send(msg(pl.LDAPAbandonRequest(id=1), 2) + msg(search(CRL1_DN, 0, attrs=["1.1"]), 3))
        for _ in range(20):
            clock.advance(0)
        rs = replies(s.take())
        assert all(r.id in (1, 3) for r in rs)
        assert [type(r.op).__name__ for r in rs if r.id == 1] == ["LDAPSearchResultEntry"]
        assert done(rs).id == 3 and done(rs).code == 0

    def test_abandon_of_unknown_id_is_ignored(self, session):
        session.send(msg(pl.LDAPAbandonRequest(id=99), 2))
        assert session.take() == b"" and not session.closed

    def test_idle_timeout(self, session_factory):
        clock = Clock()
        s = session_factory(LdapSettings(idle_timeout=30), clock=clock)
        clock.advance(20)
        ask(s, search(CRL1_DN, 0))
        clock.advance(20)
        assert not s.closed  # 20 s since the last request
        clock.advance(11)
        assert s.transport.disconnecting


class TestMalformed:
    """RFC 4511 4.1.1: a Notice of Disconnection with protocolError, then the end."""

    @pytest.mark.parametrize("data", [
        b"\x04\x03abc",                              # not a SEQUENCE
        b"\x30\x80\x02\x01\x01\x42\x00\x00\x00",     # indefinite length
        b"\x30\x03\x04\x01\x01",                     # messageID not an INTEGER
        b"\x30\x05\x02\x01\x01\x42\x01",             # protocolOp runs past the message
        b"\x30\x07\x02\x01\x01\x63\x02\x04\x00",     # search request cut short
        b"\x30\x06\x02\x01\x01\x61\x01\x00",         # a response sent by the client
        b"\x30\x05\x02\x01\x00\x4a\x00",             # messageID 0
        b"\x30\x05\x02\x01\xff\x42\x00",             # negative messageID
        b"\x30\x08\x02\x01\x01\x42\x00\x04\x01x",    # trailing garbage that is not controls
        b"\x30\x0c\x02\x01\x01\x60\x07\x02\x01\x03\x04\x00\x99\x00",  # bind: bad auth tag
        b"\x30\x84\xff\xff\xff\xff",                 # 4 GiB announced
    ])
    def test_notice_and_close(self, session, data):
        rs = replies(session.take() if session.send(data) is None else b"")
        op = notice(rs)
        assert op.resultCode == 2
        assert session.closed
        session.send(msg(search(CRL1_DN, 0)))  # ignored once closing
        assert session.take() == b""

    def test_pdu_cap_before_the_bytes_arrive(self, session_factory):
        s = session_factory(LdapSettings(max_pdu=1000))
        big = msg(search(CRL1_DN, 0, attrs=["x" * 2000]))
        s.send(big[:10])  # only the header: refused at once, nothing buffered
        op = notice(replies(s.take()))
        assert op.resultCode == 2 and b"limit" in op.errorMessage
        assert s.closed and len(s.proto._buf) == 0

    def test_under_the_cap_is_served(self, session_factory):
        s = session_factory(LdapSettings(max_pdu=1000))
        rs = ask(s, search(CRL1_DN, 0, attrs=["x" * 500]))
        assert done(rs).code == 0


class TestFlowControl:
    def test_paused_writer_stops_work_and_reading(self, session_factory):
        clock = Clock()
        s = session_factory(LdapSettings(max_pending=4, idle_timeout=60), clock=clock)
        s.proto.pauseProducing()  # what the transport does when its buffer is full
        for mid in range(1, 20):
            s.send(msg(search(CRL1_DN, 0, attrs=[CRL]), mid))
        assert s.take() == b""
        assert s.transport.producerState == "paused"  # no more reading from this client
        assert len(s.proto._queue) == 19
        s.proto.resumeProducing()  # the client read: everything queued is answered
        rs = replies(s.take())
        assert [r.id for r in rs if isinstance(r.op, pl.LDAPSearchResultDone)] == list(range(1, 20))
        assert s.transport.producerState == "producing"

    def test_client_that_never_reads_is_dropped(self, session_factory):
        clock = Clock()
        s = session_factory(LdapSettings(idle_timeout=60), clock=clock)
        s.proto.pauseProducing()
        s.send(msg(search("c=HK", 2), 1))
        clock.advance(59)
        assert not s.closed
        clock.advance(2)
        assert s.transport.disconnecting

    def test_connection_cap(self, directory):
        from twisted.internet.testing import StringTransport

        from ldap_fixtures import Session
        from ldap.directory import DirectoryHolder
        from ldap.server import DirectoryFactory

        clock = Clock()
        factory = DirectoryFactory(DirectoryHolder(directory), LdapSettings(max_connections=2), clock)
        a = Session(factory.provider, factory.settings, clock, factory)
        b = Session(factory.provider, factory.settings, clock, factory)
        t = StringTransport()
        refused = factory.buildProtocol(None)
        refused.makeConnection(t)
        op = notice(replies(t.value()))
        assert op.resultCode == 52 and t.disconnecting
        assert len(factory.connections) == 2
        a.proto.connectionLost(None)  # one leaves: the next is served
        c = Session(factory.provider, factory.settings, clock, factory)
        assert done(ask(c, search(CRL1_DN, 0))).code == 0
        assert b.proto in factory.connections
