"""NSS (the library behind Firefox and many Linux tools) as the relying party: `certutil`,
`crlutil` and `vfychain` against `pkirepo serve` with the demo PKI (the session's shared
server, read only).

NSS gets the right verdicts over OCSP and with the full CRL, but refuses every CRL that
carries a critical Issuing Distribution Point: the partitions and the ARL. The tests that
record the refusal fail once NSS accepts such CRLs, so that the README's advice to NSS users
(OCSP or the full CRL) gets revisited.

Each check runs in a fresh NSS database holding only the demo root (trusted) and the issuing
CA. Verdicts are read from vfychain's exit code and its text ("Chain is good!" / "Chain is
bad!" and the NSS error). NSS's PKIX revocation checker (`-pp`) reports a missing answer under
`failIfNoInfo` as "revoked" too, so a rejection only counts as the server's verdict when
checked without `failIfNoInfo`, and an acceptance only proves the answer was used when
checked with it.
"""
from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from crl_testlib import ARL, FULL, PARTITIONS, fetch, index

# vfychain -u 4: certificateUsageEmailSigner; the demo's subscriber certificates carry the
# emailProtection EKU, as e-Cert does.
USAGE = "4"
REVOKED = "ERROR -8180: Peer's Certificate has been revoked."
UNKNOWN_CRITICAL = "SEC_ERROR_CRL_UNKNOWN_CRITICAL_EXTENSION"


def nss(tool: str, *args) -> subprocess.CompletedProcess:
    # Bounded: vfychain fetches over HTTP and must not hang a test on a stuck server.
    return subprocess.run([tool, *map(str, args)], capture_output=True, text=True, timeout=60)


def text_of(p: subprocess.CompletedProcess) -> str:
    return p.stdout + p.stderr


@pytest.fixture(scope="module")
def demo(shared_server):
    """The served demo: its certificates name the server's OCSP and CRL URLs."""
    return shared_server.demo


@pytest.fixture
def nssdb(demo, tmp_path) -> str:
    """A fresh NSS database trusting the demo root, with the issuing CA as an intermediate."""
    db = f"sql:{tmp_path / 'nssdb'}"
    (tmp_path / "nssdb").mkdir()
    for args in (("-N", "--empty-password"),
                 ("-A", "-n", "root", "-t", "C,C,C", "-a", "-i", demo.pki / "root.pem"),
                 ("-A", "-n", "ca", "-t", ",,", "-a", "-i", demo.pki / "ca.pem")):
        p = nss("certutil", "-d", db, *args)
        assert p.returncode == 0, text_of(p)
    return db


@pytest.fixture(scope="module")
def crl_files(shared_server, tmp_path_factory) -> dict[str, Path]:
    """Every current CRL as served over HTTP, in DER files named for the CRL."""
    d = tmp_path_factory.mktemp("nss-crl")
    out = {}
    for name, entry in index(shared_server.url).items():
        out[name] = d / f"{name}.crl"
        out[name].write_bytes(fetch(entry["url"]))
    assert set(out) == {ARL, FULL, *PARTITIONS}, sorted(out)
    return out


def vfychain(db: str, cert: Path, method: str, *flags: str) -> subprocess.CompletedProcess:
    """vfychain with the PKIX checker, checking the leaf's status by one method only."""
    args = ["-d", db, "-pp", "-u", USAGE, "-g", "leaf", "-m", method]
    for f in flags:
        args += ["-s", f]
    return nss("vfychain", *args, "-a", cert)


def accepted(p: subprocess.CompletedProcess) -> bool:
    text = text_of(p)
    return p.returncode == 0 and "Chain is good!" in text and "Chain is bad!" not in text


def refused(p: subprocess.CompletedProcess) -> bool:
    text = text_of(p)
    return p.returncode != 0 and "Chain is bad!" in text and "Chain is good!" not in text


def crlutil_import(db: str, crl: Path) -> subprocess.CompletedProcess:
    return nss("crlutil", "-I", "-d", db, "-i", crl)


def crl_listing(db: str) -> list[str]:
    """The nicknames of the CAs whose CRLs the database holds (crlutil -L)."""
    p = nss("crlutil", "-L", "-d", db)
    assert p.returncode == 0, text_of(p)
    return [line.split()[0] for line in p.stdout.splitlines() if line.rstrip().endswith("CRL")]


# OCSP, at the URL in the certificates' AIA


def test_ocsp_good_verifies(nssdb, demo):
    p = vfychain(nssdb, demo.pki / "good.pem", "ocsp", "failIfNoInfo")
    assert accepted(p), text_of(p)


@pytest.mark.parametrize("sample", ["revoked.pem", "held.pem"])
def test_ocsp_revoked_and_held_are_refused_as_revoked(nssdb, demo, sample):
    p = vfychain(nssdb, demo.pki / sample, "ocsp")
    assert refused(p) and REVOKED in text_of(p), text_of(p)


# The full CRL, imported into the database


@pytest.fixture
def full_crl_db(nssdb, crl_files) -> str:
    p = crlutil_import(nssdb, crl_files[FULL])
    assert p.returncode == 0, text_of(p)
    assert crl_listing(nssdb) == ["ca"]
    return nssdb


def test_full_crl_good_verifies(full_crl_db, demo):
    # forbidFetching: the imported CRL is the only source, not the partition in the CDP.
    p = vfychain(full_crl_db, demo.pki / "good.pem", "crl", "forbidFetching", "failIfNoInfo")
    assert accepted(p), text_of(p)


@pytest.mark.parametrize("sample", ["revoked.pem", "held.pem"])
def test_full_crl_revoked_and_held_are_refused_as_revoked(full_crl_db, demo, sample):
    p = vfychain(full_crl_db, demo.pki / sample, "crl", "forbidFetching")
    assert refused(p) and REVOKED in text_of(p), text_of(p)


def test_full_crl_check_is_not_vacuous(nssdb, demo):
    """Without the CRL, the same strict check refuses good.pem: its acceptance above came
    from the imported CRL."""
    p = vfychain(nssdb, demo.pki / "good.pem", "crl", "forbidFetching", "failIfNoInfo")
    assert refused(p), text_of(p)


# CRLs with a critical IDP: refused by NSS. These fail when NSS starts accepting them.


@pytest.mark.parametrize("name", [*PARTITIONS, ARL])
def test_crlutil_refuses_crls_with_a_critical_idp(nssdb, crl_files, name):
    p = crlutil_import(nssdb, crl_files[name])
    text = text_of(p)
    assert p.returncode != 0 and UNKNOWN_CRITICAL in text, (
        f"NSS now imports {name} (critical IDP): update the README's advice to NSS users\n{text}")
    assert crl_listing(nssdb) == []


def test_crl_fetching_gets_nothing_from_the_partition_in_the_cdp(nssdb, demo):
    """With fetching on, NSS follows the certificate's CDP to its partition and cannot use
    it: revoked.pem passes unless a missing answer is an error, and then good.pem fails too.
    A relying party on NSS must use OCSP or the full CRL."""
    p = vfychain(nssdb, demo.pki / "revoked.pem", "crl")
    assert accepted(p), f"NSS now refuses revoked.pem from its partition: update the README\n{text_of(p)}"
    p = vfychain(nssdb, demo.pki / "good.pem", "crl", "failIfNoInfo")
    assert refused(p), f"NSS now verifies good.pem from its partition: update the README\n{text_of(p)}"
