"""Test helpers shared by conftest.py and the test libraries: demo repositories made by the
real CLI, `pkirepo serve` as a real subprocess on 127.0.0.1, and running the CLI.

A module of its own (not conftest.py) because tests/ocsp and tests/ldap have conftests
too, and `from conftest import ...` would pick whichever was loaded first."""
from __future__ import annotations

import datetime as dt
import os
import random
import re
import socket
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

BIN = Path(sys.executable).parent
PKIREPO = str(BIN / "pkirepo")


def _ephemeral_low() -> int:
    try:
        return int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return 32768


# A port for a server a test starts later. Not port 0: that draws from the kernel's
# ephemeral range, which every client connection of the run draws from too, and a port
# picked before its server binds it can meanwhile be the local end of some connection
# ("Address already in use" at start). Below that range only servers take ports; the
# ports handed out are remembered, so that two servers never get the same one.
_HANDED_OUT: set[int] = set()
_PORTS = random.Random()


def free_port() -> int:
    hi = min(_ephemeral_low(), 65536)
    lo = 20000 if hi > 24000 else 1024
    for _ in range(2000):
        port = _PORTS.randrange(lo, hi)
        if port in _HANDED_OUT:
            continue
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
        _HANDED_OUT.add(port)
        return port
    raise RuntimeError(f"no free port on 127.0.0.1 between {lo} and {hi}")


def run_cli(*args: str, check: bool = True, env: dict | None = None, timeout: float = 300) -> subprocess.CompletedProcess:
    """Run `pkirepo ARGS`; `env` adds to this process's environment. With check, a
    non-zero exit fails the test with the command's output."""
    proc = subprocess.run([PKIREPO, *args], capture_output=True, text=True, timeout=timeout,
                          env=None if env is None else {**os.environ, **env})
    if check and proc.returncode != 0:
        raise AssertionError(f"pkirepo {' '.join(args)} exited {proc.returncode}:\n{proc.stdout}\n{proc.stderr}")
    return proc


@dataclass
class Demo:
    dir: Path
    config: Path
    http_port: int
    ldap_port: int
    admin_port: int = 0  # the admin API's HTTPS listener (0: not known to the test)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.http_port}"

    @property
    def pki(self) -> Path:
        return self.dir / "pki"

    @property
    def crl_dir(self) -> Path:
        return self.dir / "pub" / "crl"

    def cli(self, *args: str, check: bool = True, env: dict | None = None) -> subprocess.CompletedProcess:
        return run_cli(*args, "--config", str(self.config), check=check, env=env)

    def set_config(self, old: str, new: str) -> None:
        text = self.config.read_text()
        assert old in text, old
        self.config.write_text(text.replace(old, new, 1))


def make_demo(directory: Path, *, subscribers: int = 40, delay: int = 0, bare: bool = True) -> Demo:
    """A demo made by `pkirepo demo init`; `bare` (the default) leaves out the sample documents
    and notices, for tests that publish their own."""
    http, ldap, admin = free_port(), free_port(), free_port()
    run_cli("demo", "init", str(directory), "--subscribers", str(subscribers),
            "--http", f"127.0.0.1:{http}", "--ldap", f"127.0.0.1:{ldap}", "--admin", f"127.0.0.1:{admin}",
            *(["--bare"] if bare else []))
    demo = Demo(directory, directory / "pkirepo.toml", http, ldap, admin)
    demo.set_config("supplementary_delay_seconds = 60", f"supplementary_delay_seconds = {delay}")
    # One daily issuance 12 h away: no scheduled CRL falls due while a test compares what
    # two protocols serve (tests of the schedule itself pin the clock instead).
    far = (dt.datetime.now(dt.timezone.utc) + dt.timedelta(hours=12)).strftime("%H:%M")
    demo.set_config('daily = ["01:15", "06:15", "11:00"]', f'daily = ["{far}"]')
    return demo


class Server:
    """`pkirepo serve` as a subprocess, with an optional environment (e.g. PKIREPO_CRASH_AT);
    ready once it prints its serving line."""

    def __init__(self, demo: Demo, *extra: str, env: dict | None = None) -> None:
        self.demo = demo
        # stderr (the log) goes to a file: an unread pipe would fill and block the server.
        self.log_path = demo.dir / "server.log"
        self._log = open(self.log_path, "a")
        self.proc = subprocess.Popen(
            [PKIREPO, "serve", "--config", str(demo.config), "--http", f"127.0.0.1:{demo.http_port}",
             "--ldap", f"127.0.0.1:{demo.ldap_port}", *extra],
            stdout=subprocess.PIPE, stderr=self._log, text=True,
            env={**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})})
        for line in self.proc.stdout:  # blocks until the server says it listens, or exits
            if line.startswith("pkirepo: serving on"):
                return
        code = self.proc.wait(timeout=30)
        self.close()
        raise AssertionError(f"server did not start (exit {code}):\n{self.log()}")

    @property
    def url(self) -> str:
        return self.demo.base_url

    def log(self) -> str:
        if not self._log.closed:
            self._log.flush()
        return self.log_path.read_text()

    def wait_exit(self, timeout: float = 30) -> int:
        code = self.proc.wait(timeout=timeout)
        self.close()
        return code

    def stop(self) -> int:
        if self.proc.poll() is None:
            self.proc.terminate()
        return self.wait_exit()

    def kill(self) -> None:
        self.proc.kill()
        self.wait_exit()

    def close(self) -> None:
        if self.proc.stdout and not self.proc.stdout.closed:
            self.proc.stdout.close()
        if not self._log.closed:
            self._log.close()


def with_own_admin_port(config_text: str) -> tuple[str, int]:
    """A copy of a demo's config whose admin API listens on a free port of its own: two
    servers made from one demo's config must not both bind its admin port."""
    port = free_port()
    text, n = re.subn(r'(\[admin\][^\[]*?\nlisten = ")[^"]*(")', rf"\g<1>127.0.0.1:{port}\g<2>", config_text, count=1)
    return (text, port) if n else (config_text, 0)
