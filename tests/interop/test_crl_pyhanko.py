"""pyhanko-certvalidator as a relying party: it follows the certificates' CRL distribution
points over real HTTP to the running server (aiohttp fetchers), under a policy that
requires CRLs for the end entity and the intermediate, with the demo root as the only
trust anchor. A request trace records what it fetched, so a pass cannot come from
anywhere but our CRLs.
"""
from __future__ import annotations

import aiohttp
import pytest
from pyhanko_certvalidator import CertificateValidator, ValidationContext
from pyhanko_certvalidator.errors import PathValidationError, RevokedError
from pyhanko_certvalidator.fetchers.aiohttp_fetchers import AIOHttpFetcherBackend
from pyhanko_certvalidator.policy_decl import CertRevTrustPolicy, RevocationCheckingPolicy, RevocationCheckingRule

from crl_testlib import ARL, cdp_url, load_cert, template_demo

REQUIRE_CRLS = CertRevTrustPolicy(RevocationCheckingPolicy(
    ee_certificate_rule=RevocationCheckingRule.CRL_REQUIRED,
    intermediate_ca_cert_rule=RevocationCheckingRule.CRL_REQUIRED,
))


async def validate(pki, sample: str) -> tuple[object, list[str]]:
    """Validate pki/<sample>; returns (path or exception, URLs fetched)."""
    fetched: list[str] = []
    trace = aiohttp.TraceConfig()

    async def on_start(session, ctx, params):
        fetched.append(str(params.url))

    trace.on_request_start.append(on_start)
    async with aiohttp.ClientSession(trace_configs=[trace]) as session:
        ctx = ValidationContext(
            trust_roots=[load_cert(pki / "RootCA2.pem")],
            other_certs=[load_cert(pki / "eCertCA2-17.pem")],
            allow_fetching=True,
            revinfo_policy=REQUIRE_CRLS,
            fetcher_backend=AIOHttpFetcherBackend(session, per_request_timeout=10),
        )
        validator = CertificateValidator(load_cert(pki / sample), validation_context=ctx)
        try:
            result = await validator.async_validate_usage(set())
        except PathValidationError as e:
            result = e
    return result, fetched


async def test_good_certificate_validates(shared_server, shared_demo):
    result, fetched = await validate(shared_demo.pki, "good.pem")
    assert not isinstance(result, Exception), result
    assert [c.subject.native["common_name"] for c in result] == [
        "Demo Root CA 2", "Demo e-Cert CA 2 - 17", "Demo Subscriber 0000"]
    # It fetched the good certificate's partition and the ARL (for the intermediate) from us.
    assert cdp_url(load_cert(shared_demo.pki / "good.pem")) in fetched
    assert f"{shared_server.url}/crl/{ARL}.crl" in fetched
    assert all(u.startswith(shared_server.url + "/crl/") for u in fetched), fetched


@pytest.mark.parametrize("sample,reason", [("revoked.pem", "compromised key"), ("held.pem", "certificate hold")])
async def test_revoked_and_held_raise_revoked_error(shared_server, shared_demo, sample, reason):
    result, fetched = await validate(shared_demo.pki, sample)
    assert isinstance(result, RevokedError), result
    assert reason in str(result), str(result)
    assert cdp_url(load_cert(shared_demo.pki / sample)) in fetched


async def test_no_server_no_validation(tmp_path_factory, tmp_path):
    """The policy really requires CRLs: with nothing listening at the distribution points,
    even the good certificate fails (and not with RevokedError)."""
    demo = template_demo(tmp_path_factory)  # never served
    result, fetched = await validate(demo.pki, "good.pem")
    assert isinstance(result, PathValidationError) and not isinstance(result, RevokedError), result
    # It tried our distribution points (the intermediate's, the ARL, comes first) and got nothing.
    assert fetched and all(u.startswith(demo.base_url + "/crl/") for u in fetched), fetched
