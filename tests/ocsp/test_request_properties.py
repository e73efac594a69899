"""Property tests: whatever bytes arrive, the decoder answers with a request or one of our
MalformedRequest errors, and nothing else."""
from __future__ import annotations

import base64

from hypothesis import HealthCheck, assume, example, given, settings
from hypothesis import strategies as st

from ocsp_helpers import cert_id, make_request, nonce_ext
from ocsp.errors import BadBase64, MalformedRequest
from ocsp.request import HashAlgorithm, OCSPRequest, RequestLimits, decode_get_path, decode_request
from publisher import der

# Seeds: valid requests of the shapes real clients send (an OpenSSL request with a nonce is
# byte-for-byte of the same shape as make_request(extensions=[nonce_ext(16 octets)])).
SEEDS = [
    make_request(),
    make_request(extensions=[nonce_ext(b"\x5a" * 16)]),
    make_request([cert_id(serial=s) for s in (1, 2**64, -3)], extensions=[nonce_ext(b"\x01" * 32, wrapped=False)]),
    make_request(
        [cert_id(der.sequence(der.oid(HashAlgorithm.SHA256.oid)), b"\x01" * 32, b"\x02" * 32)],
        version=0,
        single_extensions=[der.extension("1.3.6.1.5.5.7.48.1.7", der.sequence())],
    ),
    make_request(signature=der.sequence(der.sequence(der.oid("1.2.840.10045.4.3.2")), der.bit_string(b"\x00" * 8))),
]

LIMITS = RequestLimits(max_requests=4, max_nonce_length=32)


def _check(data: bytes) -> None:
    try:
        req = decode_request(data, LIMITS)
    except MalformedRequest as e:
        assert e.ocsp_status == 1
        return
    assert isinstance(req, OCSPRequest)
    assert 1 <= len(req.cert_ids) <= LIMITS.max_requests
    for cid in req.cert_ids:
        assert len(cid.issuer_name_hash) == len(cid.issuer_key_hash) == cid.hash_algorithm.digest_size
    if req.nonce is not None:
        assert 1 <= len(req.nonce.value) <= LIMITS.max_nonce_length


@st.composite
def mutated(draw) -> bytes:
    data = bytearray(draw(st.sampled_from(SEEDS)))
    for _ in range(draw(st.integers(1, 4))):
        op = draw(st.sampled_from(["flip", "set", "delete", "insert", "truncate", "duplicate"]))
        pos = draw(st.integers(0, len(data)))
        if op == "flip" and pos < len(data):
            data[pos] ^= 1 << draw(st.integers(0, 7))
        elif op == "set" and pos < len(data):
            data[pos] = draw(st.sampled_from([0x00, 0x01, 0x02, 0x04, 0x05, 0x30, 0x7F, 0x80, 0x81, 0x82, 0xA0, 0xFF]))
        elif op == "delete":
            del data[pos : pos + draw(st.integers(1, 8))]
        elif op == "insert":
            data[pos:pos] = draw(st.binary(min_size=1, max_size=8))
        elif op == "truncate":
            del data[pos:]
        elif op == "duplicate":
            end = min(len(data), pos + draw(st.integers(1, 16)))
            data[pos:pos] = data[pos:end]
    return bytes(data)


@settings(max_examples=1500, suppress_health_check=[HealthCheck.too_slow])
@given(mutated())
def test_mutated_requests(data):
    _check(data)


@settings(max_examples=800)
@given(st.binary(max_size=300))
@example(b"")
@example(b"\x30")
@example(b"\x30\x84\xff\xff\xff\xff")
def test_random_bytes(data):
    _check(data)


@settings(max_examples=500)
@given(st.binary(max_size=200))
def test_random_bytes_inside_a_sequence(data):
    _check(der.sequence(data))


@settings(max_examples=800)
@given(st.text(max_size=120))
def test_random_get_paths(path):
    try:
        decoded = decode_get_path(path)
    except BadBase64:
        return
    # Anything that decodes then goes to the DER decoder, which must hold as well.
    _check(decoded)


@settings(max_examples=300)
@given(mutated())
def test_get_path_round_trip(data):
    # Leading slashes are dropped on purpose (a DER SEQUENCE's base64 starts with "M"), so
    # only what starts like a SEQUENCE comes back unchanged.
    assume(data[:1] == b"\x30")
    path = base64.b64encode(data).decode()
    assert decode_get_path(path) == data
    _check(decode_get_path(path))
