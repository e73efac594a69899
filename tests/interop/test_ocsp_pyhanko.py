"""pyhanko-certvalidator in OCSP mode, fetching from the running responder through the
certificates' own AIA OCSP URL."""
from __future__ import annotations

import pytest
from asn1crypto import pem
from asn1crypto import x509 as asn1_x509
from pyhanko_certvalidator import CertificateValidator, ValidationContext
from pyhanko_certvalidator.errors import RevokedError
from pyhanko_certvalidator.fetchers.aiohttp_fetchers import AIOHttpFetcherBackend
from pyhanko_certvalidator.policy_decl import CertRevTrustPolicy, RevocationCheckingPolicy, RevocationCheckingRule

from ocsp_testlib import CA, ROOT

# OCSP and only OCSP for the end-entity certificate: a CRL cannot stand in for it.
OCSP_ONLY = CertRevTrustPolicy(
    RevocationCheckingPolicy(
        ee_certificate_rule=RevocationCheckingRule.OCSP_REQUIRED,
        intermediate_ca_cert_rule=RevocationCheckingRule.OCSP_REQUIRED,
    )
)


def _load(path) -> asn1_x509.Certificate:
    data = path.read_bytes()
    if pem.detect(data):
        _, _, data = pem.unarmor(data)
    return asn1_x509.Certificate.load(data)


async def _validate(demo, name: str):
    async with AIOHttpFetcherBackend() as fetchers:
        ctx = ValidationContext(
            trust_roots=[_load(demo.pki / f"{ROOT}.pem")],
            other_certs=[_load(demo.pki / f"{CA}.pem")],
            allow_fetching=True,
            fetchers=fetchers,
            revinfo_policy=OCSP_ONLY,
        )
        validator = CertificateValidator(_load(demo.pki / name), validation_context=ctx)
        path = await validator.async_validate_usage(set())
        return path, ctx


@pytest.fixture(scope="module")
def demo(shared_server):
    return shared_server.demo


async def test_good_certificate_validates(demo):
    path, ctx = await _validate(demo, "good.pem")
    assert path.leaf.serial_number == _load(demo.pki / "good.pem").serial_number
    # Checked by OCSP: the validation context holds responses fetched from our responder.
    serials = {r["tbs_response_data"]["responses"][0]["cert_id"]["serial_number"].native for r in
               (o["response_bytes"]["response"].parsed for o in ctx.ocsps)}
    assert path.leaf.serial_number in serials


@pytest.mark.parametrize("name, reason", [("revoked.pem", "compromised key"), ("held.pem", "certificate hold")])
async def test_revoked_and_held_are_rejected(demo, name, reason):
    with pytest.raises(RevokedError, match=reason):
        await _validate(demo, name)
