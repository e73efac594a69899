"""A real PostgreSQL server for tests: initdb and pg_ctl in a temporary directory, on a free
port of 127.0.0.1, with password (SCRAM) logins over TCP as a deployment would have.

The server refuses to run as root: as root, the directory is handed to the `postgres` user
(made by Debian's package) and the binaries run through runuser.
"""
from __future__ import annotations

import glob
import os
import pwd
import shutil
import subprocess
import tempfile
from pathlib import Path

from repo_testlib import free_port

PASSWORD = "test-secret"


def pg_bindir() -> Path:
    """Debian's versioned directory (initdb is not on PATH); `make sysdeps` installs it."""
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    if not found:
        raise RuntimeError("PostgreSQL server binaries not found under /usr/lib/postgresql/*/bin: "
                           "run `make sysdeps` (installs Debian's postgresql package)")
    return Path(found[-1]).parent


class PgServer:
    """`directory` must be reachable by the `postgres` user when run as root: pytest's own
    temporary directories are not (mode 0700), so the default is a directory of its own
    under the system's temporary directory, removed by stop()."""

    def __init__(self, directory: Path | None = None) -> None:
        self._own = directory is None
        self.dir = Path(tempfile.mkdtemp(prefix="pkirepo-pg-") if directory is None else directory)
        self.data = self.dir / "data"
        self.port = free_port()
        self.bindir = pg_bindir()
        self._as_user: list[str] = []
        if os.geteuid() == 0:
            user = pwd.getpwnam("postgres")
            self.dir.mkdir(parents=True, exist_ok=True)
            os.chown(self.dir, user.pw_uid, user.pw_gid)
            self._as_user = ["runuser", "-u", "postgres", "--"]

    def _run(self, *args: str) -> None:
        r = subprocess.run([*self._as_user, *args], capture_output=True, text=True, timeout=120, cwd="/")
        if r.returncode != 0:
            raise RuntimeError(f"{' '.join(args)} failed ({r.returncode}): {r.stdout}{r.stderr}")

    def start(self) -> "PgServer":
        pwfile = self.dir / "pw"
        pwfile.write_text(PASSWORD + "\n")
        if self._as_user:
            shutil.chown(pwfile, "postgres")
        self._run(str(self.bindir / "initdb"), "-D", str(self.data), "-U", "postgres", "--auth-local=trust",
                  "--auth-host=scram-sha-256", f"--pwfile={pwfile}", "-E", "UTF8", "--no-sync")
        # fsync off: the tests' server holds nothing worth keeping across a power cut.
        self.resume()
        return self

    def resume(self) -> None:
        """Start the server on its data directory (again, after `pause()`), on the same port."""
        opts = (f"-p {self.port} -k {self.dir} -c listen_addresses=127.0.0.1 -c fsync=off"
                f" -c synchronous_commit=off -c full_page_writes=off")
        self._run(str(self.bindir / "pg_ctl"), "-D", str(self.data), "-o", opts, "-l", str(self.dir / "log"),
                  "-w", "start")

    def pause(self) -> None:
        """Stop the server as an operator would (`pg_ctl stop -m fast`: every session is ended,
        new connections are refused), keeping its data for `resume()`."""
        self._run(str(self.bindir / "pg_ctl"), "-D", str(self.data), "-m", "fast", "-w", "stop")

    def stop(self) -> None:
        subprocess.run([*self._as_user, str(self.bindir / "pg_ctl"), "-D", str(self.data), "-m", "immediate",
                        "-w", "stop"], capture_output=True, timeout=60, cwd="/")
        if self._own:
            shutil.rmtree(self.dir, ignore_errors=True)

    def url(self, database: str = "postgres") -> str:
        """The URL as a config would give it: no password (that comes from a file or env)."""
        return f"postgresql://postgres@127.0.0.1:{self.port}/{database}"

    def psql(self, sql: str, database: str = "postgres") -> str:
        out = subprocess.run([*self._as_user, str(self.bindir / "psql"), "-h", str(self.dir), "-p", str(self.port),
                              "-U", "postgres", "-d", database, "-v", "ON_ERROR_STOP=1", "-Atqc", sql],
                             check=True, capture_output=True, text=True, timeout=60, cwd="/")
        return out.stdout

    def create_database(self, name: str) -> str:
        self.psql(f'CREATE DATABASE "{name}" TEMPLATE template0')
        return self.url(name)


def pg_node(shared_demo, directory: Path, url: str, *, extra: str = ""):
    """A repository node on the PostgreSQL database at `url`, made from `shared_demo`: its
    PKI, a password file, its config with `[store] url` (and `extra` lines there), a
    store.path place and publication directory of its own, its own ports."""
    from repo_testlib import Demo, with_own_admin_port

    directory.mkdir(parents=True, exist_ok=True)
    shutil.copytree(shared_demo.pki, directory / "pki")
    (directory / "db-password").write_text(PASSWORD + "\n")
    text = shared_demo.config.read_text().replace(
        'path = "pkirepo.sqlite"', f'path = "node.sqlite"\nurl = "{url}"\npassword_file = "db-password"'
        + (f"\n{extra}" if extra else ""), 1)
    text, admin_port = with_own_admin_port(text)
    (directory / "pkirepo.toml").write_text(text)
    return Demo(directory, directory / "pkirepo.toml", free_port(), free_port(), admin_port)
