"""Fixtures for the OCSP protocol unit tests: a pinned-time PKI and real-client requests."""
from __future__ import annotations

from pathlib import Path

import pytest

import ocsp_pki


@pytest.fixture(scope="session")
def ec_ca() -> ocsp_pki.CA:
    return ocsp_pki.make_ec_ca()


@pytest.fixture(scope="session")
def rsa_ca() -> ocsp_pki.CA:
    return ocsp_pki.make_rsa_ca()


@pytest.fixture(scope="session", params=["ec", "rsa"])
def any_ca(request, ec_ca, rsa_ca) -> ocsp_pki.CA:
    return ec_ca if request.param == "ec" else rsa_ca


@pytest.fixture(scope="session")
def pki_dir(tmp_path_factory, ec_ca, rsa_ca) -> Path:
    out = tmp_path_factory.mktemp("pki")
    ocsp_pki.write(ec_ca, out / "ec")
    ocsp_pki.write(rsa_ca, out / "rsa")
    return out
