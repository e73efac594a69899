"""The README's examples run as written against the demo, so the README cannot drift from
the product: every `sh` block (but the `make` ones) is run in order with `bash -euo pipefail`
from a directory laid out like a checkout after `make demo` (`.venv/`, `var/demo/` served on
the demo's default addresses, 127.0.0.1:8080 and 127.0.0.1:1389)."""
from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from repo_testlib import PKIREPO, run_cli

ROOT = Path(__file__).resolve().parent.parent
HTTP, LDAP = ("127.0.0.1", 8080), ("127.0.0.1", 1389)
ADMIN = ("127.0.0.1", 8443)  # the admin API, as `demo init` sets it up by default


def readme_blocks() -> list[tuple[str, str]]:
    """(the section it stands in, the block) for every sh block to run."""
    out, section = [], ""
    text = (ROOT / "README.md").read_text()
    for m in re.finditer(r"^(#{2,3} [^\n]*)$|^```sh\n(.*?)^```$", text, re.M | re.S):
        if m.group(1):
            section = m.group(1).lstrip("# ").strip()
        elif not re.search(r"^make ", m.group(2), re.M):
            out.append((section, m.group(2)))
    return out


BLOCKS = readme_blocks()


def _free(addr: tuple[str, int]) -> bool:
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(addr)
        except OSError:
            return False
    return True


@pytest.fixture(scope="module")
def checkout(tmp_path_factory):
    """A directory like the repository after `make demo`, with the demo being served."""
    busy = [f"{h}:{p}" for h, p in (HTTP, LDAP, ADMIN) if not _free((h, p))]
    if busy:
        pytest.fail(f"the README's examples use the demo's default addresses, and {', '.join(busy)} "
                    f"is taken (a `make demo` running?)")
    work = tmp_path_factory.mktemp("checkout")
    (work / ".venv").symlink_to(Path(sys.executable).parent.parent)  # the venv running the tests
    demo = work / "var" / "demo"
    run_cli("demo", "init", str(demo), "--http", "127.0.0.1:8080", "--ldap", "127.0.0.1:1389")
    log = open(work / "server.log", "w")
    proc = subprocess.Popen([PKIREPO, "serve", "--config", str(demo / "pkirepo.toml")],
                            stdout=subprocess.PIPE, stderr=log, text=True,
                            env={**os.environ, "PYTHONUNBUFFERED": "1"})
    try:
        for line in proc.stdout:
            if line.startswith("pkirepo: serving on"):
                break
        else:
            pytest.fail(f"pkirepo serve did not start:\n{(work / 'server.log').read_text()}")
        yield work
    finally:
        proc.terminate()
        proc.wait(timeout=30)
        proc.stdout.close()
        log.close()


def test_the_readme_has_examples_to_run():
    sections = {s for s, _ in BLOCKS}
    assert len(BLOCKS) >= 8
    assert {"OCSP", "LDAP", "The operator's day", "Migrating from `openssl ca`"} <= sections


@pytest.mark.parametrize("section, block", BLOCKS, ids=[f"{i}-{s}" for i, (s, _) in enumerate(BLOCKS)])
def test_example_runs_as_written(checkout, section, block):
    env = {k: v for k, v in os.environ.items() if k != "PKIREPO_CONFIG"}
    env["LDAPNOINIT"] = "1"
    p = subprocess.run(["bash", "-euo", "pipefail", "-c", block], cwd=checkout, env=env,
                       capture_output=True, text=True, timeout=180)
    shown = f"--- {section} ---\n{block}\n--- stdout ---\n{p.stdout[-3000:]}\n--- stderr ---\n{p.stderr[-3000:]}"
    assert p.returncode == 0, shown
    assert "Traceback" not in p.stderr and "pkirepo: error" not in p.stderr, shown
