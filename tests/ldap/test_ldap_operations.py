"""ldap.operations and ldap.errors: the LDAP operations as functions of a snapshot, without a
session, and the table from exception to LDAPResult."""
from __future__ import annotations

import pytest

from ldap import ber, errors, operations
from ldap.codes import PASSWORD_MODIFY, START_TLS, WHO_AM_I, ResultCode
from ldap.dn import InvalidDN
from ldap.errors import NoSuchObject
from ldap.requests import BindRequest, CompareRequest, Control, ExtendedRequest, SearchRequest
from publisher.errors import MalformedInput, RepoError

from ldap_fixtures import CA_DN, CRL1_DN, ORG, ROOT_DN

EVERYTHING = ("present", b"objectClass")


def result(op: bytes) -> tuple[int, int, str, str]:
    """(tag, resultCode, matchedDN, diagnosticMessage) of an LDAPResult-shaped protocolOp."""
    tag, start, _ = ber.header(op, 0)
    fields = []
    pos = start
    for _ in range(3):
        _, s, n = ber.header(op, pos)
        fields.append(op[s:s + n])
        pos = s + n
    return tag, int.from_bytes(fields[0], "big"), fields[1].decode(), fields[2].decode()


def code_of(e: BaseException) -> int:
    return errors.result_of(e)[0]


def request(base: str, scope: int = 0, flt: tuple = EVERYTHING, size: int = 0,
            time: int = 0, attrs: tuple[bytes, ...] = (b"1.1",)) -> SearchRequest:
    return SearchRequest(base.encode(), scope, 0, size, time, False, flt, attrs)


def run_all(search: operations.Search, slice_entries: int = 1000) -> list[bytes]:
    ops: list[bytes] = []
    while search.code is None:
        ops.extend(search.run(slice_entries))
    return ops


def dn_of(op: bytes) -> str:
    _, start, _ = ber.header(op, 0)
    _, s, n = ber.header(op, start)
    return op[s:s + n].decode()


class TestPlanSearch:
    @pytest.mark.parametrize("base, scope, code, matched", [
        (f"cn=Nobody,{CA_DN}", 0, 32, CA_DN),
        (f"cn=Nobody,{CA_DN}", 2, 32, CA_DN),
        (f"cn=a,cn=b,{CRL1_DN}", 1, 32, CRL1_DN),
        ("o=Other,c=US", 2, 32, ""),
        ("this is not a DN", 0, 34, ""),
        (CRL1_DN, 3, 2, ""),  # no such scope
    ])
    def test_refused_before_anything_is_sent(self, directory, base, scope, code, matched):
        with pytest.raises(RepoError) as e:
            operations.plan_search(directory, request(base, scope), now=lambda: 0.0)
        assert errors.result_of(e.value)[:2] == (code, matched)
        assert not errors.ends_session(e.value)
        assert operations.repeatable(code) == (code in (32, 34))

    def test_base(self, directory):
        ops = run_all(operations.plan_search(directory, request(CRL1_DN), now=lambda: 0.0))
        assert [dn_of(o) for o in ops[:-1]] == [CRL1_DN]
        assert result(ops[-1])[:2] == (ber.SEARCH_RESULT_DONE, 0)

    def test_slices_examine_each_entry_once(self, directory):
        whole = run_all(operations.plan_search(directory, request("c=HK", 2), now=lambda: 0.0))
        search = operations.plan_search(directory, request("c=HK", 2), now=lambda: 0.0)
        ops = run_all(search, slice_entries=1)
        assert ops == whole
        assert sorted(dn_of(o) for o in ops[:-1]) == sorted(e.dn for e in directory)
        assert search.code == ResultCode.SUCCESS and search.sent == len(directory)

    @pytest.mark.parametrize("client, server, sent, code", [
        (2, 0, 2, ResultCode.SIZE_LIMIT_EXCEEDED),
        (0, 3, 3, ResultCode.SIZE_LIMIT_EXCEEDED),
        (10, 3, 3, ResultCode.SIZE_LIMIT_EXCEEDED),  # the server's limit holds
        (4, 0, 4, ResultCode.SUCCESS),  # exactly the limit
    ])
    def test_size_limit(self, directory, client, server, sent, code):
        req = request("c=HK", 2, ("eq", b"objectClass", b"pkiUser"), size=client)
        search = operations.plan_search(directory, req, size_limit=server, now=lambda: 0.0)
        ops = run_all(search)
        assert len(ops) == sent + 1 and search.code == code
        assert operations.repeatable(code)

    def test_time_limit_between_slices(self, directory):
        clock = [100.0]
        search = operations.plan_search(directory, request("c=HK", 2, time=2),
                                        time_limit=10, now=lambda: clock[0])
        assert len(list(search.run(1))) == 1 and search.code is None
        clock[0] += 2.5
        [done] = list(search.run(1))
        assert result(done)[1] == ResultCode.TIME_LIMIT_EXCEEDED
        assert not operations.repeatable(search.code)


class TestCompare:
    @pytest.mark.parametrize("dn, attr, value, code, matched", [
        (CRL1_DN, b"cn", b"HONGKONG POST E-CERT CA 2 - 17 CRL1", 6, ""),
        (CRL1_DN, b"commonName", b"Hongkong Post e-Cert CA 2 - 17 CRL1", 6, ""),
        (CRL1_DN, b"cn", b"something else", 5, ""),
        (CRL1_DN, b"mail", b"x", 16, ""),
        (CRL1_DN, b"cn;lang-en", b"x", 16, ""),
        ("", b"supportedLDAPVersion", b"3", 6, ""),  # the root DSE
        (f"cn=nobody,{ORG}", b"cn", b"x", 32, ORG),
        (f"uid=9,cn=nobody,{ROOT_DN}", b"cn", b"x", 32, ROOT_DN),
        ("not a DN", b"cn", b"x", 34, ""),
    ])
    def test_compare(self, directory, dn, attr, value, code, matched):
        req = CompareRequest(dn.encode(), attr, value)
        try:
            op = operations.compare(directory, req)
        except RepoError as e:
            assert errors.result_of(e)[:2] == (code, matched)
        else:
            assert result(op) == (ber.COMPARE_RESPONSE, code, "", "")

    def test_compare_on_der(self, directory, pki):
        req = CompareRequest(CRL1_DN.encode(), b"2.5.4.39", pki.crl)
        assert result(operations.compare(directory, req))[1] == ResultCode.COMPARE_TRUE


class TestBind:
    @pytest.mark.parametrize("req, code", [
        (BindRequest(3, b"", b"", False), 0),  # anonymous
        (BindRequest(3, b"cn=someone,c=HK", b"", False), 0),  # unauthenticated
        (BindRequest(3, b"cn=someone,c=HK", b"secret", False), 49),
        (BindRequest(3, b"", b"secret", False), 49),
        (BindRequest(3, b"not a dn", b"", False), 34),
        (BindRequest(3, b"", b"", True), 7),  # SASL
        (BindRequest(2, b"", b"", False), 2),
    ])
    def test_bind(self, req, code):
        try:
            op = operations.bind(req)
        except RepoError as e:
            assert code_of(e) == code and not errors.ends_session(e)
        else:
            assert code == 0 and result(op) == (ber.BIND_RESPONSE, 0, "", "")


class TestReadOnly:
    @pytest.mark.parametrize("tag", [ber.ADD_REQUEST, ber.DEL_REQUEST, ber.MODIFY_REQUEST,
                                     ber.MODDN_REQUEST])
    def test_writes_refused(self, tag):
        assert tag in operations.WRITE_REQUESTS
        with pytest.raises(errors.ReadOnly) as e:
            operations.refuse_write()
        assert errors.result_of(e.value) == (50, "", "the directory is read-only")

    @pytest.mark.parametrize("name, code", [
        (PASSWORD_MODIFY, 50), (START_TLS, 2), (b"1.2.3.4", 2)])
    def test_extended_refused(self, name, code):
        with pytest.raises(RepoError) as e:
            operations.extended(ExtendedRequest(name))
        assert code_of(e.value) == code and not errors.ends_session(e.value)

    def test_who_am_i(self):
        op = operations.extended(ExtendedRequest(WHO_AM_I))
        assert result(op)[:2] == (ber.EXTENDED_RESPONSE, 0)


class TestControls:
    def test_critical_unknown_control_fails_the_operation(self):
        with pytest.raises(errors.UnsupportedCriticalControl) as e:
            operations.check_controls([Control(b"1.2.840.113556.1.4.319", True)])
        assert code_of(e.value) == 12 and "1.2.840.113556.1.4.319" in e.value.message

    def test_non_critical_controls_ignored(self):
        operations.check_controls([Control(b"1.2.840.113556.1.4.319", False)])


class TestResultOf:
    @pytest.mark.parametrize("exc, expected, ends", [
        (NoSuchObject(CA_DN), (32, CA_DN, ""), False),
        (InvalidDN("invalid DN"), (34, "", "invalid DN"), False),
        (MalformedInput("empty substring filter"), (2, "", "empty substring filter"), False),
        (errors.ReadOnly(), (50, "", "the directory is read-only"), False),
        (errors.InvalidCredentials("no"), (49, "", "no"), False),
        (errors.ProtocolViolation("messageID 0 is reserved"),
         (2, "", "messageID 0 is reserved"), True),
        (ber.FrameError("indefinite BER length"),
         (2, "", "malformed message: indefinite BER length"), True),
        # nothing internal leaks
        (RepoError("store path /var/lib/x"), (80, "", "internal error"), False),
        (KeyError("secret"), (80, "", "internal error"), True),
    ])
    def test_table(self, exc, expected, ends):
        assert errors.result_of(exc) == expected
        assert errors.ends_session(exc) == ends
