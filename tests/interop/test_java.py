"""Java's PKIX validator as the relying party: java.security.cert.CertPathValidator ("PKIX")
with a PKIXRevocationChecker (NO_FALLBACK), run by tests/interop/PkixCheck.java against
`pkirepo serve` with the demo PKI (the session's shared server, read only).

Java gets the right verdicts by every route: the full CRL given in a CertStore, the partition
fetched from the certificate's CRL distribution point, the ARL fetched from the issuing CA's,
and OCSP at the URL in the AIA. Unlike NSS, it accepts the CRLs with a critical Issuing
Distribution Point (the partitions and the ARL). A held certificate fails as revoked, with
the reason CERTIFICATE_HOLD.

PkixCheck is compiled once and run in two JVMs (one line per verdict): one with every
connection refused, for the CertStore checks, and one online. Each line names the URLs Java
opened for that check, so that a verdict is tied to where its answer came from.
"""
from __future__ import annotations

import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest

from crl_testlib import FULL, PARTITIONS, cdp_url, fetch, index, load_cert

SAMPLES = ("good.pem", "revoked.pem", "held.pem")
SOURCE = Path(__file__).with_name("PkixCheck.java")


@dataclass(frozen=True)
class Verdict:
    fetched: tuple[str, ...]
    ok: bool
    reason: str = ""             # CertPathValidatorException.BasicReason
    revocation_reason: str = ""  # CRLReason from the CertificateRevokedException, or "-"
    message: str = ""


def parse(line: str) -> tuple[tuple[str, str], Verdict]:
    mode, cert, fetched, rest = line.split(" ", 3)
    assert fetched.startswith("fetched="), line
    urls = () if fetched == "fetched=-" else tuple(fetched.removeprefix("fetched=").split(","))
    if rest == "OK":
        return (mode, cert), Verdict(urls, True)
    fail, reason, revocation, message = rest.split(" ", 3)
    assert fail == "FAIL", line
    return (mode, cert), Verdict(urls, False, reason, revocation, message)


def java(*args, timeout: float = 60) -> subprocess.CompletedProcess:
    # Bounded: Java fetches over HTTP and must not hang a test on a stuck server.
    return subprocess.run([*map(str, args)], capture_output=True, text=True, timeout=timeout)


@pytest.fixture(scope="module")
def verdicts(shared_server, tmp_path_factory) -> dict[tuple[str, str], Verdict]:
    """(mode, certificate file) -> Java's verdict, for every sample in every mode."""
    demo = shared_server.demo
    d = tmp_path_factory.mktemp("java")
    p = java("javac", "-d", d / "classes", SOURCE)
    assert p.returncode == 0, p.stderr
    full = d / f"{FULL}.crl"
    full.write_bytes(fetch(index(shared_server.url)[FULL]["url"]))
    out: dict[tuple[str, str], Verdict] = {}
    for phase in ("offline", "online"):
        p = java("java", "-Dcom.sun.security.enableCRLDP=true", "-cp", d / "classes", "PkixCheck",
                 phase, demo.pki / "root.pem", demo.pki / "ca.pem", full,
                 *(demo.pki / s for s in SAMPLES))
        assert p.returncode == 0, p.stdout + p.stderr
        out.update(parse(line) for line in p.stdout.splitlines())
    modes = {"crl-full", "crl-none", "crl-dp-leaf", "crl-dp-chain", "ocsp"}
    assert set(out) == {(m, s) for m in modes for s in SAMPLES}, sorted(out)
    return out


def assert_revoked(v: Verdict, reason: str) -> None:
    assert not v.ok and v.reason == "REVOKED" and v.revocation_reason == reason, v


# The full CRL in a CertStore, every connection refused


def test_full_crl_gives_the_verdicts_without_fetching(verdicts):
    assert verdicts["crl-full", "good.pem"] == Verdict((), True)
    assert_revoked(verdicts["crl-full", "revoked.pem"], "KEY_COMPROMISE")
    assert_revoked(verdicts["crl-full", "held.pem"], "CERTIFICATE_HOLD")
    assert all(verdicts["crl-full", s].fetched == () for s in SAMPLES)


def test_no_crl_is_an_error_under_no_fallback(verdicts):
    """Without the full CRL, the same check cannot reach the partition and refuses even
    good.pem: the verdicts above came from the CertStore."""
    for s in SAMPLES:
        v = verdicts["crl-none", s]
        assert not v.ok and v.reason == "UNDETERMINED_REVOCATION_STATUS", (s, v)


# The partition, fetched from the certificate's CRL distribution point (critical IDP)


def test_partitions_with_a_critical_idp_are_accepted(verdicts, shared_server):
    """Java fetches the partition named in the certificate and uses it, critical IDP and
    all. This fails if Java starts refusing such CRLs: update the relying parties' page."""
    demo = shared_server.demo
    assert verdicts["crl-dp-leaf", "good.pem"].ok, verdicts["crl-dp-leaf", "good.pem"]
    assert_revoked(verdicts["crl-dp-leaf", "revoked.pem"], "KEY_COMPROMISE")
    assert_revoked(verdicts["crl-dp-leaf", "held.pem"], "CERTIFICATE_HOLD")
    fetched = {u for s in SAMPLES for u in verdicts["crl-dp-leaf", s].fetched}
    wanted = {cdp_url(load_cert(demo.pki / s)) for s in SAMPLES}
    assert {u.rsplit("/", 1)[1].removesuffix(".crl") for u in wanted} <= set(PARTITIONS), wanted
    assert wanted <= fetched, (fetched, wanted)


def test_the_arl_with_a_critical_idp_is_accepted_for_the_issuing_ca(verdicts, shared_server):
    """Checking the whole chain adds the issuing CA, whose distribution point is the ARL."""
    arl = cdp_url(load_cert(shared_server.demo.pki / "ca.pem"))
    assert arl in verdicts["crl-dp-chain", "good.pem"].fetched, verdicts["crl-dp-chain", "good.pem"]
    assert verdicts["crl-dp-chain", "good.pem"].ok, verdicts["crl-dp-chain", "good.pem"]
    assert_revoked(verdicts["crl-dp-chain", "revoked.pem"], "KEY_COMPROMISE")
    assert_revoked(verdicts["crl-dp-chain", "held.pem"], "CERTIFICATE_HOLD")


# OCSP, at the URL in the certificates' AIA


def test_ocsp_verdicts(verdicts, shared_server):
    assert verdicts["ocsp", "good.pem"].ok, verdicts["ocsp", "good.pem"]
    assert_revoked(verdicts["ocsp", "revoked.pem"], "KEY_COMPROMISE")
    assert_revoked(verdicts["ocsp", "held.pem"], "CERTIFICATE_HOLD")
    for s in SAMPLES:
        (url,) = verdicts["ocsp", s].fetched
        assert url.startswith(f"{shared_server.url}/ocsp/"), url
