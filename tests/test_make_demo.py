"""`make demo HTTP=... LDAP=...` serves on the addresses given, for a new demo and for one
that already exists (the variables reach `pkirepo serve`, not only `demo init`)."""
from __future__ import annotations

import os
import signal
import subprocess
import urllib.request
from pathlib import Path

from repo_testlib import free_port

ROOT = Path(__file__).resolve().parent.parent


def _make_demo(demo: Path, http: int, ldap: int) -> None:
    proc = subprocess.Popen(
        ["make", "--no-print-directory", "demo", f"DEMO={demo}", f"HTTP=127.0.0.1:{http}",
         f"LDAP=127.0.0.1:{ldap}", f"ADMIN=127.0.0.1:{free_port()}"],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, start_new_session=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"})
    try:
        lines = []
        for line in proc.stdout:
            lines.append(line)
            if line.startswith("pkirepo: serving on"):
                break
        assert lines and lines[-1].startswith(f"pkirepo: serving on http://127.0.0.1:{http}/"), "".join(lines)
        assert f"LDAP:         ldap://127.0.0.1:{ldap}/" in "".join(lines)
        with urllib.request.urlopen(f"http://127.0.0.1:{http}/healthz", timeout=10) as r:
            assert r.read() == b"ok\n"
        p = subprocess.run(["ldapsearch", "-x", "-LLL", "-H", f"ldap://127.0.0.1:{ldap}", "-b", "", "-s", "base",
                            "namingContexts"], capture_output=True, text=True, timeout=30,
                           env={**os.environ, "LDAPNOINIT": "1"})
        assert p.returncode == 0 and "namingContexts: c=HK" in p.stdout, p.stderr
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=30)
        proc.stdout.close()


def test_make_demo_serves_on_the_addresses_given(tmp_path):
    demo = tmp_path / "demo"
    _make_demo(demo, free_port(), free_port())
    assert (demo / "pkirepo.toml").is_file()
    # The demo exists now: other addresses still take effect.
    _make_demo(demo, free_port(), free_port())
