"""The admin API's request parsers (admin_schema.py) and credential parsing (admin_auth.py):
every input is either parsed or refused with a reason naming the field, never anything
else; what the OpenAPI document says agrees with what the parsers take."""
from __future__ import annotations

import datetime as dt
import hashlib
import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from publisher.admin_auth import TokenGrant, Unauthenticated, bearer_token, from_token, require, Principal, Forbidden
from publisher.admin_schema import (B64_PATTERN, REVOKE_REASONS, Invalid, openapi, parse_base64, parse_reason,
                                    parse_serial, parse_time, routes)
from publisher.actor import Actor
from publisher.crl import EARLIEST_TIME

ROUTES = routes(max_batch=5, document_kinds=("cps", "cp"), notice_kinds=("incident", "maintenance"),
                doc_languages=("zh-Hant", "en"), notice_languages=("zh-Hant", "en"))
BY_OP = {r.op: r for r in ROUTES}
json_values = st.recursive(st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
                           lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner,
                                                                                         max_size=4),
                           max_leaves=12)


@given(st.integers(min_value=0, max_value=(1 << 160) - 1), st.sampled_from(["", "0x", "0X"]), st.booleans())
def test_serial_round_trip(n, prefix, colons):
    h = f"{n:X}"
    if colons and len(h) % 2 == 0:
        h = ":".join(h[i:i + 2] for i in range(0, len(h), 2))
    assert parse_serial(prefix + h) == n


@given(json_values)
def test_serial_parses_or_refuses(value):
    try:
        n = parse_serial(value)
    except ValueError:
        return
    assert isinstance(value, str) and 0 <= n < 1 << 160


@pytest.mark.parametrize("bad", ["-1", "+1", "1_0", "١٢", "", "0x", "1" * 41, 12, None])
def test_serial_refusals(bad):
    with pytest.raises(ValueError):
        parse_serial(bad)


@given(st.datetimes(min_value=dt.datetime(1950, 1, 1, 0, 0, 1), max_value=dt.datetime(9998, 1, 1),
                    timezones=st.just(dt.timezone.utc)))
def test_time_round_trip(when):
    when = when.replace(microsecond=0)
    assert parse_time(when.strftime("%Y-%m-%dT%H:%M:%SZ")) == when


@given(json_values)
def test_time_parses_or_refuses(value):
    try:
        when = parse_time(value)
    except ValueError:
        return
    assert when.tzinfo is not None and when >= EARLIEST_TIME


def test_time_without_zone_or_before_1950_is_refused():
    for bad in ("2026-01-01T00:00:00", "1949-12-31T23:59:59Z", "yesterday", "0001-01-01T00:00:00+01:00"):
        with pytest.raises(ValueError):
            parse_time(bad)


@given(st.text())
def test_reason_only_revocation_reasons(value):
    try:
        r = parse_reason(value)
    except ValueError:
        assert value not in REVOKE_REASONS
        return
    assert r.name == value and value not in ("certificateHold", "removeFromCRL")


@given(st.binary(min_size=1, max_size=64))
def test_base64_round_trip_and_pattern(data):
    import base64

    text = base64.b64encode(data).decode()
    assert parse_base64(text) == data
    assert re.fullmatch(B64_PATTERN, text)


@pytest.mark.parametrize("op", sorted(r.op for r in ROUTES if r.body is not None))
@settings(max_examples=60)
@given(body=json_values)
def test_every_body_parses_or_names_its_field(op, body):
    try:
        parsed = BY_OP[op].body.parse(body)
    except Invalid as e:
        assert e.field and e.detail.startswith(e.field)
        return
    assert set(parsed) == {f.name for f in BY_OP[op].body.fields}


def test_revoke_body():
    body = BY_OP["revoke"].body.parse({"issuer": "eCertCA2-17", "serial": "0a:1B", "reason": "keyCompromise",
                                       "revocation_time": "2026-11-25T01:15:00+08:00"})
    assert body["serial"] == 0x0A1B and body["reason"].name == "keyCompromise"
    assert body["revocation_time"] == dt.datetime(2026, 11, 24, 17, 15, tzinfo=dt.timezone.utc)
    assert body["invalidity_date"] is None
    for bad, field in (({"serial": "1"}, "issuer"), ({"issuer": "x", "serial": "1", "reason": "hold"}, "reason"),
                       ({"issuer": "x", "serial": "1", "extra": 1}, "extra"), ([], "body")):
        with pytest.raises(Invalid) as e:
            BY_OP["revoke"].body.parse(bad)
        assert e.value.field == field


def test_batches_are_capped():
    certs = BY_OP["add_certificates"].body
    with pytest.raises(Invalid, match="max_batch"):
        certs.parse({"certificates": [{"pem": "x"}] * 6})
    assert len(certs.parse({"certificates": [{"pem": "x"}] * 5})["certificates"]) == 5
    bundle = "-----BEGIN CERTIFICATE-----\nAA==\n-----END CERTIFICATE-----\n" * 3
    with pytest.raises(Invalid, match="PEM bundles"):
        certs.parse({"certificates": [{"pem": bundle}, {"pem": bundle}]})


def test_the_document_names_every_route_role_and_field():
    doc = openapi(ROUTES, server_url="https://127.0.0.1:8443")
    assert doc["openapi"].startswith("3.1")
    for r in ROUTES:
        op = doc["paths"]["/admin/v1" + r.path][r.method.lower()]
        assert op["operationId"] == r.op and all(role in op["description"] for role in r.roles)
        if r.body is not None:
            schema = op["requestBody"]["content"]["application/json"]["schema"]
            assert set(schema["properties"]) == {f.name for f in r.body.fields}
        header = [p for p in op.get("parameters", []) if p["name"] == "Idempotency-Key"]
        assert bool(header) == (r.idempotency is not None)
        if r.idempotency == "required":
            assert header[0]["required"] is True


@given(st.one_of(st.none(), st.text(max_size=60)))
def test_bearer_header_parses_or_refuses(header):
    try:
        token = bearer_token(header)
    except Unauthenticated:
        return
    assert token is None or (token and header.strip().lower().startswith("bearer"))


def test_tokens_by_hash_and_roles():
    grants = [TokenGrant("a", hashlib.sha256(b"secret-a").digest(), frozenset({"revoker"})),
              TokenGrant("b", hashlib.sha256(b"secret-b").digest(), frozenset({"auditor"}))]
    p = from_token("secret-b", grants, source="127.0.0.1")
    assert p.actor == Actor("token", "b", "127.0.0.1") and p.roles == {"auditor"}
    with pytest.raises(Unauthenticated):
        from_token("secret-c", grants, source=None)
    with pytest.raises(Forbidden, match="revoker"):
        require(p, ("revoker",), "POST /admin/v1/revoke")
    require(Principal(Actor("token", "a"), frozenset({"revoker"})), ("revoker",), "revoke")
