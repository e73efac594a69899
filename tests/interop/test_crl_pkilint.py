"""pkilint's CRL linter on what the running server publishes.

Findings (pkilint 0.13.3, recorded when this was written):
- `-p PKIX`: no finding at any severity (`-s ALL`) on the full CRL, the partitions and the
  ARL. We require no WARNING or higher; NOTICE/INFO would be tolerated but none appear.
- `-p BR`: the ARL and partitions without a held certificate are clean; a CRL listing a held
  certificate gets exactly one ERROR, `cabf.crl_prohibited_reason_code` ("certificateHold"):
  the CA/B Forum BRs forbid suspension, the CP (certificateHold on the CRL) requires it. That
  finding is asserted as the only BR one, so any other BR regression still fails.
pkilint has no Issuing Distribution Point rules: IDP semantics are tested in
test_crl_openssl.py.
"""
from __future__ import annotations

import datetime as dt
import json
import os
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric import rsa

from crl_testlib import ARL, FULL, PARTITIONS, fetch, index, load_cert, parse_crl
from publisher import crl as crlmod
from publisher import der as derlib
from publisher.signer import KeySigner

LINT_CRL = str(Path(sys.executable).parent / "lint_crl")
BAD = {"FATAL", "ERROR", "WARNING"}


def lint(path: Path, kind: str, profile: str) -> tuple[int, list[dict]]:
    """Run lint_crl with every finding reported, JSON out; returns (exit code, findings)."""
    p = subprocess.run([LINT_CRL, "lint", "-t", kind, "-p", profile, "-s", "ALL", "-f", "JSON", str(path)],
                       capture_output=True, text=True, timeout=120)
    assert p.stdout.strip(), f"lint_crl printed nothing (exit {p.returncode}): {p.stderr}"
    results = json.loads(p.stdout)["results"]
    findings = [dict(f, validator=r["validator"], node=r["node_path"])
                for r in results for f in r["finding_descriptions"]]
    return p.returncode, findings


@pytest.fixture(scope="module")
def files(shared_server, tmp_path_factory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("lint")
    out = {}
    for name, entry in index(shared_server.url).items():
        out[name] = d / f"{name}.crl"
        out[name].write_bytes(fetch(entry["url"]))
    return out


KINDS = {FULL: "CRL", **{p: "CRL" for p in PARTITIONS}, ARL: "ARL"}


@pytest.fixture(scope="module")
def results(files) -> dict[tuple[str, str], tuple[int, list[dict]]]:
    """Every (CRL, profile) linted once, in parallel (lint_crl takes ~1 s to start)."""
    jobs = [(name, profile) for name in KINDS for profile in ("PKIX", "BR")]
    with ThreadPoolExecutor(max_workers=max(2, os.cpu_count() or 2)) as pool:
        done = pool.map(lambda j: lint(files[j[0]], KINDS[j[0]], j[1]), jobs)
        return dict(zip(jobs, done))


def _has_hold(path: Path) -> bool:
    c = parse_crl(path.read_bytes())
    return any(e.crl_reason_value is not None and e.crl_reason_value.native == "certificate_hold"
               for e in c["tbs_cert_list"]["revoked_certificates"])


@pytest.mark.parametrize("name", KINDS)
def test_pkix_profile_no_findings(results, name):
    code, findings = results[name, "PKIX"]
    assert not [f for f in findings if f["severity"] in BAD], findings
    assert findings == [], findings  # nothing at all today; loosen to NOTICE/INFO only if pkilint adds some
    assert code == 0


@pytest.mark.parametrize("name", KINDS)
def test_br_profile_only_the_hold_finding(files, results, name):
    code, findings = results[name, "BR"]
    if _has_hold(files[name]):
        assert [(f["severity"], f["code"]) for f in findings] == [("ERROR", "cabf.crl_prohibited_reason_code")], findings
        assert "certificateHold" in findings[0]["message"]
        assert code != 0
    else:
        assert findings == [], findings
        assert code == 0


def test_the_hold_is_where_we_expect_it(shared_demo, files):
    """The BR exception above applies to the full CRL and the held certificate's partition
    only: make sure those are the ones that list the hold."""
    url = next(dp["distribution_point"].chosen[0].native
               for dp in load_cert(shared_demo.pki / "held.pem").crl_distribution_points_value)
    held_partition = url.rsplit("/", 1)[1].removesuffix(".crl")
    assert {n for n in files if _has_hold(files[n])} == {FULL, held_partition}


def test_linter_catches_a_missing_crl_number(files, tmp_path):
    """Not vacuous: the same invocation reports a CRL without a CRL number."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    now = dt.datetime(2030, 1, 1, tzinfo=dt.timezone.utc)
    tbs = derlib.sequence(
        derlib.integer(1), KeySigner(key).algorithm_der, parse_crl(files[FULL].read_bytes())["tbs_cert_list"]["issuer"].dump(),
        derlib.x509_time(now), derlib.x509_time(now + dt.timedelta(days=1)),
        derlib.explicit(0, derlib.sequence(crlmod.aki_extension(b"\x01" * 20))))  # no CRL number
    signer = KeySigner(key)
    der = derlib.sequence(tbs, signer.algorithm_der, derlib.bit_string(signer.sign(tbs)))
    path = tmp_path / "no-number.crl"
    path.write_bytes(der)
    code, findings = lint(path, "CRL", "PKIX")
    assert code != 0 and any(f["severity"] in BAD for f in findings), findings


def test_empty_crl_is_clean(tmp_path, files):
    """An empty CRL (no revokedCertificates field) passes PKIX and BR."""
    signer = KeySigner(rsa.generate_private_key(public_exponent=65537, key_size=2048))
    issuer = parse_crl(files[FULL].read_bytes())["tbs_cert_list"]["issuer"].dump()
    now = dt.datetime.now(dt.timezone.utc).replace(microsecond=0)
    params = crlmod.CrlParams(issuer_name_der=issuer, authority_key_id=b"\x02" * 20, this_update=now,
                              next_update=now + dt.timedelta(hours=24), number=1)
    path = tmp_path / "empty.crl"
    path.write_bytes(crlmod.sign_crl(signer, params, b""))
    with ThreadPoolExecutor(max_workers=2) as pool:
        for profile, (code, findings) in zip(("PKIX", "BR"), pool.map(lambda p: lint(path, "CRL", p), ("PKIX", "BR"))):
            assert not [f for f in findings if f["severity"] in BAD], (profile, findings)
