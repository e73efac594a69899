"""The work one search may cost: filter size and depth limits, substring filters on
certificate and CRL values, and slices that end on elapsed time.  Real sockets on 127.0.0.1
against the listener started in-process, requests encoded with ldaptor's codec."""
from __future__ import annotations

import asyncio

import pytest
from ldaptor.protocols import pureldap as pl
from twisted.internet.task import Clock

from ldap.codes import ResultCode
from ldap.directory import DirectoryHolder
from ldap.listener import start_ldap
from ldap.settings import LdapSettings

from ldap_fixtures import CRL1_DN, SUFFIX
from ldap_wire import done, entries, msg, replies, search


def search_with(flt: pl.LDAPFilter, base: str = SUFFIX, attrs=("1.1",)) -> pl.LDAPSearchRequest:
    return pl.LDAPSearchRequest(baseObject=base.encode(), scope=2, derefAliases=0, sizeLimit=0,
                                timeLimit=0, typesOnly=0, filter=flt,
                                attributes=[a.encode() for a in attrs])


def substrings(n: int, attr: bytes = b"cn") -> pl.LDAPFilter_or:
    """OR of n substring assertions that match nothing: every entry is tested n times."""
    return pl.LDAPFilter_or([
        pl.LDAPFilter_substrings(type=attr, substrings=[pl.LDAPFilter_substrings_any(b"x%05dq" % i)])
        for i in range(n)])


def nested(depth: int) -> pl.LDAPFilter:
    f: pl.LDAPFilter = pl.LDAPFilter_present(b"objectClass")
    for _ in range(depth):
        f = pl.LDAPFilter_and([f])
    return f


async def exchange(port: int, *ops: pl.LDAPProtocolRequest) -> list[list]:
    """Send each search on one connection and collect its replies up to its
    SearchResultDone."""
    r, w = await asyncio.open_connection("127.0.0.1", port)
    try:
        results = []
        for mid, op in enumerate(ops, 1):
            w.write(msg(op, mid))
            await w.drain()
            buf = b""
            for _ in range(10_000):
                chunk = await asyncio.wait_for(r.read(65536), 30)
                assert chunk, "connection closed"
                buf += chunk
                try:
                    rs = replies(buf)
                except Exception:
                    continue  # a reply cut in the middle: read on
                if rs and isinstance(rs[-1].op, pl.LDAPSearchResultDone):
                    break
            results.append(rs)
        return results
    finally:
        w.close()


@pytest.fixture
async def listen(directory):
    started = []

    async def start(**settings):
        listener = await start_ldap(LdapSettings(listen="127.0.0.1:0", **settings),
                                    DirectoryHolder(directory))
        started.append(listener)
        return listener

    yield start
    for listener in started:
        await listener.stop()


class TestFilterLimits:
    async def test_oversized_filter_is_refused_and_the_session_goes_on(self, listen):
        """Ten thousand substring assertions (about 170 KB, under the PDU cap) are not
        evaluated: adminLimitExceeded, then the next search on the connection is served."""
        listener = await listen()
        big, small = await exchange(listener.port, search_with(substrings(10_000)),
                                    search(CRL1_DN, 0, attrs=["1.1"]))
        assert entries(big) == [] and done(big).code == ResultCode.ADMIN_LIMIT_EXCEEDED
        assert b"500" in done(big).op.errorMessage
        assert done(small).code == 0 and len(entries(small)) == 1

    @pytest.mark.parametrize("n, code", [(3, 0), (4, ResultCode.ADMIN_LIMIT_EXCEEDED)])
    async def test_item_limit_is_configurable(self, listen, n, code):
        # An OR of n substring assertions of one component each is 1 + 2n items.
        listener = await listen(max_filter_items=7)
        [rs] = await exchange(listener.port, search_with(substrings(n)))
        assert done(rs).code == code

    @pytest.mark.parametrize("depth, code", [(4, 0), (5, ResultCode.UNWILLING_TO_PERFORM)])
    async def test_depth_limit(self, listen, depth, code):
        listener = await listen(max_filter_depth=4)
        [rs] = await exchange(listener.port, search_with(nested(depth)))
        assert done(rs).code == code
        if code == 0:
            assert entries(rs)

    async def test_substrings_of_a_crl_match_nothing(self, listen, pki):
        """RFC 4523 gives certificates and CRLs no substring rule: such an assertion is
        Undefined, whatever bytes it holds, so its cost never depends on a CRL's size."""
        listener = await listen()
        inner = pki.crl[len(pki.crl) // 2: len(pki.crl) // 2 + 8]
        flt = pl.LDAPFilter_substrings(type=b"certificateRevocationList",
                                       substrings=[pl.LDAPFilter_substrings_any(inner)])
        [rs, eq] = await exchange(
            listener.port, search_with(flt),
            search_with(pl.LDAPFilter_equalityMatch(
                attributeDesc=pl.LDAPAttributeDescription(b"certificateRevocationList;binary"),
                assertionValue=pl.LDAPAssertionValue(pki.crl))))
        assert entries(rs) == [] and done(rs).code == 0
        assert CRL1_DN in [e.dn for e in entries(eq)]  # equality still matches


class _Stopwatch(Clock):
    """A clock on which every reading takes `step` seconds: elapsed time grows with the
    work done, deterministically."""

    def __init__(self, step: float) -> None:
        super().__init__()
        self.step = step

    def seconds(self) -> float:
        self.rightNow += self.step
        return self.rightNow


class TestSlices:
    def test_a_slice_ends_on_elapsed_time(self, session_factory):
        """With a slice of 10 ms and each look at the clock costing 4 ms, one turn of the
        loop examines a couple of entries under a costly filter, not the whole tree; the
        search then completes over the following turns."""
        clock = _Stopwatch(0.004)
        s = session_factory(LdapSettings(slice_seconds=0.01), clock=clock)
        flt = pl.LDAPFilter_or([substrings(200), pl.LDAPFilter_present(b"objectClass")])
        s.send(msg(search_with(flt)))
        first = replies(s.take())
        assert not any(isinstance(r.op, pl.LDAPSearchResultDone) for r in first)
        assert 1 <= len(entries(first)) <= 4
        got = list(first)
        for _ in range(1000):
            clock.advance(0)
            got += replies(s.take())
            if got and isinstance(got[-1].op, pl.LDAPSearchResultDone):
                break
        assert done(got).code == 0
        plain = session_factory()
        plain.send(msg(search_with(pl.LDAPFilter_present(b"objectClass"))))
        assert [e.dn for e in entries(got)] == [e.dn for e in entries(replies(plain.take()))]
