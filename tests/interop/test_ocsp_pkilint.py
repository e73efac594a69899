"""pkilint's OCSP response linter on what the running responder sends."""
from __future__ import annotations

import pytest

from ocsp_testlib import lint, query

NEVER_ISSUED = 0x7A11_0000_0000_0002


@pytest.fixture(scope="module")
def demo(shared_server):
    return shared_server.demo


@pytest.mark.parametrize("nonce", [False, True], ids=["pre-signed", "nonce"])
@pytest.mark.parametrize(
    "certs, serials",
    [(("good.pem",), ()), (("revoked.pem",), ()), (("held.pem",), ()), ((), (NEVER_ISSUED,)),
     (("good.pem", "revoked.pem"), (NEVER_ISSUED,))],
    ids=["good", "revoked", "held", "unknown", "several"],
)
def test_lint_clean(demo, tmp_path, certs, serials, nonce):
    out_path = tmp_path / "resp.der"
    out = query(demo, *certs, serials=serials, nonce=nonce, extra=("-respout", out_path))
    assert "Response verify OK" in out.stderr, out.stderr
    result = lint(out_path)
    assert result.returncode == 0 and result.stdout.strip() == "", result.stdout + result.stderr
