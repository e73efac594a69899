"""ldap.requests: the lean SearchRequest decoder, checked against ldaptor's encoder."""
from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from ldaptor import ldapfilter

from ldap.ber import FrameError
from ldap.decode import from_ldaptor
from ldap.requests import decode_search

from ldap_wire import search

FILTERS = [
    "(objectClass=*)",
    "(mail=ky.lee@example.hk)",
    "(&(objectClass=pkiUser)(|(mail=a@b)(cn=x*y*z))(!(uid>=10)))",
    "(cn=*)", "(cn=a*)", "(cn=*a)", "(cn=*a*b*)", "(cn=a*b*c)",
    "(uid<=5)", "(mail~=x)", "(mail:=x)", "(mail:caseExactMatch:=x)", "(:dn:2.5.13.5:=x)",
    "(cn=\\2a\\28\\29)",
]


class TestDecodeSearch:
    @pytest.mark.parametrize("text", FILTERS)
    def test_same_as_ldaptor(self, text):
        req = search("cn=Hongkong Post e-Cert CA 2 - 17 CRL1,o=Hongkong Post,c=HK", 1, text,
                     ["certificateRevocationList;binary", "1.1"], size=7, time=3, types_only=True)
        d = decode_search(req.toWire())
        assert d.base == b"cn=Hongkong Post e-Cert CA 2 - 17 CRL1,o=Hongkong Post,c=HK"
        assert (d.scope, d.size_limit, d.time_limit, d.types_only) == (1, 7, 3, True)
        assert d.attributes == (b"certificateRevocationList;binary", b"1.1")
        assert d.filter == from_ldaptor(ldapfilter.parseFilter(text))

    @pytest.mark.parametrize("op", [
        b"",                                                   # nothing
        b"\x63\x00",                                           # no fields
        b"\x60\x02\x04\x00",                                   # not a search
        b"\x63\x05\x04\x00\x0a\x01\x00",                       # cut short
        bytes.fromhex("6317040000a0000a0100020100020100010100870163300000"),  # trailing bytes
        bytes.fromhex("6314040000a0000a0100020100020100010100aa00300000"),    # unknown filter tag
        bytes.fromhex("631504000a01000a0100020100020100010100a400300000"),   # empty substrings
    ])
    def test_malformed(self, op):
        with pytest.raises(FrameError):
            decode_search(op)

    def test_deep_nesting_refused(self):
        f = b"\x87\x01c"
        for _ in range(70):
            n = len(f)
            f = b"\xa2" + (bytes([n]) if n < 128 else b"\x82" + n.to_bytes(2, "big")) + f
        body = (b"\x04\x00\x0a\x01\x00\x0a\x01\x00\x02\x01\x00\x02\x01\x00\x01\x01\x00" + f + b"\x30\x00")
        op = b"\x63\x82" + len(body).to_bytes(2, "big") + body
        with pytest.raises(FrameError):
            decode_search(op)

    @settings(max_examples=300, deadline=None)
    @given(st.binary(max_size=200))
    def test_garbage_never_crashes(self, data):
        try:
            decode_search(b"\x63" + bytes([len(data)]) + data if len(data) < 128 else data)
        except FrameError:
            pass

    @settings(max_examples=200, deadline=None)
    @given(st.data())
    def test_truncations_raise_frame_error(self, data):
        wire = search("c=HK", 2, data.draw(st.sampled_from(FILTERS)), ["cn"]).toWire()
        cut = data.draw(st.integers(min_value=0, max_value=len(wire) - 1))
        with pytest.raises(FrameError):
            decode_search(wire[:cut])
