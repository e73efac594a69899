"""Who the admin API lets in by client certificate: the pure decision of admin_auth, over
certificates made here (the TLS side is in tests/interop/test_admin_api.py)."""
from __future__ import annotations

import datetime as dt

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from publisher.admin_auth import Grant, Unauthenticated, from_certificate
from publisher.demo_admin import issue, make_ca

NOW = dt.datetime(2026, 12, 2, tzinfo=dt.timezone.utc)
CA, CA_KEY = make_ca("Admin CA", now=NOW)
FEED, _ = issue(CA, CA_KEY, "feed", now=NOW)
GRANTS = [Grant(FEED.subject.rfc4514_string(), frozenset({"revoker"}))]


def der(cert) -> bytes:
    from cryptography.hazmat.primitives.serialization import Encoding

    return cert.public_bytes(Encoding.DER)


def test_a_client_certificate_from_the_ca_gets_its_grant():
    p = from_certificate(der(FEED), client_cas=[CA], grants=GRANTS, now=NOW, source="127.0.0.1")
    assert p.roles == {"revoker"} and p.actor.name == FEED.subject.rfc4514_string()


@pytest.mark.parametrize("make, why", [
    (lambda: issue(*make_ca("Admin CA", now=NOW), "feed", now=NOW)[0], "admin.client_cas"),  # same name, other key
    (lambda: issue(*make_ca("Other CA", now=NOW), "feed", now=NOW)[0], "admin.client_cas"),
    (lambda: issue(CA, CA_KEY, "feed", now=NOW, server_host="127.0.0.1")[0], "clientAuth"),
    (lambda: issue(CA, CA_KEY, "feed", now=NOW, days=1, not_before=NOW - dt.timedelta(days=3))[0], "expired"),
    (lambda: issue(CA, CA_KEY, "feed", now=NOW, not_before=NOW + dt.timedelta(days=1))[0], "not valid before"),
])
def test_a_certificate_not_for_us_is_refused_saying_why(make, why):
    with pytest.raises(Unauthenticated) as e:
        from_certificate(der(make()), client_cas=[CA], grants=GRANTS, now=NOW, source=None)
    assert why in e.value.detail


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=600))
def test_any_bytes_as_a_certificate_are_a_401_never_a_crash(data):
    with pytest.raises(Unauthenticated):
        from_certificate(data, client_cas=[CA], grants=GRANTS, now=NOW, source=None)
