"""GnuTLS as the relying party: `certtool --verify` (Debian's gnutls-bin) with the CRLs as
served over HTTP by `pkirepo serve` (the session's shared server, read only).

certtool fetches nothing: it checks the chain it is given against the CRLs it is given. It
accepts the partitioned CRLs and the ARL with their critical Issuing Distribution Point, and
gets the right verdicts with the full CRL, with the partition that covers a certificate, and
with the ARL for the CA certificates. It does not check a CRL's scope: a partition that does
not cover the certificate simply does not list it (recorded below, so the relying parties'
page keeps telling GnuTLS users which CRL to give it)."""
from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from crl_testlib import ARL, FULL, PARTITIONS, cdp_url, der_to_pem_crl, fetch, index, load_cert

TRUSTED = "Chain verification output: Verified. The certificate is trusted."
REVOKED = "The certificate chain is revoked."


@pytest.fixture(scope="module")
def demo(shared_server):
    return shared_server.demo


@pytest.fixture(scope="module")
def crls(shared_server, tmp_path_factory) -> dict[str, Path]:
    """Every current CRL as served over HTTP, as PEM files (certtool reads PEM)."""
    d = tmp_path_factory.mktemp("gnutls-crl")
    out = {name: der_to_pem_crl(fetch(entry["url"]), d / f"{name}.pem")
           for name, entry in index(shared_server.url).items()}
    assert set(out) == {ARL, FULL, *PARTITIONS}, sorted(out)
    return out


def certtool_verify(demo, chain: list[Path], crl: Path, tmp_path: Path) -> str:
    """The verdict line of `certtool --verify` on `chain` (leaf first), trusting the demo root."""
    bundle = tmp_path / "chain.pem"
    bundle.write_bytes(b"".join(p.read_bytes() for p in chain))
    p = subprocess.run(["certtool", "--verify", "--load-ca-certificate", str(demo.pki / "root.pem"),
                        "--load-crl", str(crl), "--infile", str(bundle)], capture_output=True, text=True, timeout=60)
    out = p.stdout + p.stderr
    verdicts = [line.strip() for line in out.splitlines() if line.startswith("Chain verification output:")]
    assert len(verdicts) == 1, out
    # certtool's exit code agrees with its text.
    assert (p.returncode == 0) == verdicts[0].startswith(TRUSTED), out
    return verdicts[0]


def partition_of(demo, sample: str) -> str:
    return cdp_url(load_cert(demo.pki / sample)).rsplit("/", 1)[1].removesuffix(".crl")


@pytest.mark.parametrize("which", ["full", "partition"])
def test_good_certificate_is_trusted(demo, crls, tmp_path, which):
    crl = crls[FULL] if which == "full" else crls[partition_of(demo, "good.pem")]
    assert certtool_verify(demo, [demo.pki / "good.pem", demo.pki / "ca.pem"], crl, tmp_path).startswith(TRUSTED)


@pytest.mark.parametrize("sample", ["revoked.pem", "held.pem"])
@pytest.mark.parametrize("which", ["full", "partition"])
def test_revoked_and_held_certificates_are_refused(demo, crls, tmp_path, sample, which):
    crl = crls[FULL] if which == "full" else crls[partition_of(demo, sample)]
    verdict = certtool_verify(demo, [demo.pki / sample, demo.pki / "ca.pem"], crl, tmp_path)
    assert REVOKED in verdict, verdict


def test_the_arl_refuses_the_retired_ca_and_passes_the_issuing_ca(demo, crls, tmp_path):
    assert REVOKED in certtool_verify(demo, [demo.pki / "RetiredCA2-16.pem"], crls[ARL], tmp_path)
    assert certtool_verify(demo, [demo.pki / "ca.pem"], crls[ARL], tmp_path).startswith(TRUSTED)


def test_a_partition_is_not_checked_for_scope(demo, crls, tmp_path):
    """A partition that does not cover the revoked certificate passes it: give certtool the
    full CRL or the certificate's own partition."""
    other = next(p for p in PARTITIONS if p != partition_of(demo, "revoked.pem"))
    verdict = certtool_verify(demo, [demo.pki / "revoked.pem", demo.pki / "ca.pem"], crls[other], tmp_path)
    assert verdict.startswith(TRUSTED), verdict
