"""What was published never goes backwards: a missing, empty, damaged or older store makes
`pkirepo serve` and the CLI refuse with exit 2 and a way out; `pkirepo recover` brings every
revocation and CRL number back from the published CRLs; a crashed CLI's half-done publication
is repaired by the running server. Real CLI, real `pkirepo serve`, real files."""
from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from cryptography import x509

from crl_testlib import copy_demo, crl_number, crl_serials, parse_crl, template_demo, wait_until
from repo_testlib import Server, free_port, run_cli

CA = "eCertCA2-17"
KILLED = -9


def _serial(demo, name: str) -> int:
    return x509.load_pem_x509_certificate((demo.pki / name).read_bytes()).serial_number


def _published(demo) -> dict[str, tuple[int, set[int]]]:
    """CRL number and revoked serials of every file in the publication directory."""
    out = {}
    for path in sorted(demo.crl_dir.glob("*.crl")):
        der = path.read_bytes()
        out[path.stem] = (crl_number(der), set(crl_serials(parse_crl(der))))
    return out


def _store_numbers(demo) -> dict[str, int]:
    """The store's current CRL number of every scope, as `pkirepo crl list` shows them."""
    out = {}
    for line in demo.cli("crl", "list").stdout.splitlines():
        name, _, number, *_ = line.split()
        out[name] = int(number.lstrip("#"))
    return out


def _remove_store(demo) -> None:
    for p in demo.dir.glob("pkirepo.sqlite*"):
        if not p.name.endswith((".published", ".lock")):
            p.unlink()


def _copy_store(demo, dest: Path) -> None:
    """A consistent copy of the store, as a backup tool would take it (no WAL left over)."""
    assert demo.cli("check").returncode == 0
    dest.mkdir(parents=True, exist_ok=True)
    shutil.copy2(demo.dir / "pkirepo.sqlite", dest / "pkirepo.sqlite")
    for suffix in ("-wal", "-shm"):
        src = demo.dir / f"pkirepo.sqlite{suffix}"
        if src.exists():
            shutil.copy2(src, dest / src.name)


def _restore_store(demo, src: Path) -> None:
    _remove_store(demo)
    for p in src.iterdir():
        shutil.copy2(p, demo.dir / p.name)


def _serve_exit(demo, timeout: float = 60):
    """`pkirepo serve` expected to refuse: its result (it must exit by itself, promptly)."""
    return run_cli("serve", "--config", str(demo.config), "--http", f"127.0.0.1:{free_port()}",
                   "--ldap", f"127.0.0.1:{free_port()}", check=False, timeout=timeout)


def _assert_refused(p, *words: str) -> None:
    assert p.returncode == 2, p.stdout + p.stderr
    assert "Traceback" not in p.stderr, p.stderr
    assert "pkirepo: serving on" not in p.stdout
    for w in words:
        assert w in p.stderr, p.stderr


@pytest.fixture
def demo(tmp_path_factory, tmp_path):
    return copy_demo(template_demo(tmp_path_factory), tmp_path / "demo")


class TestNoImplicitStore:
    @pytest.mark.parametrize("command", [("crl", "list"), ("publish",), ("check",)])
    def test_missing_store_is_refused_and_not_created(self, demo, command):
        _remove_store(demo)
        p = demo.cli(*command, check=False)
        assert p.returncode == 2 and "no store here" in p.stderr and "pkirepo init" in p.stderr, p.stderr
        assert not (demo.dir / "pkirepo.sqlite").exists()

    def test_mistyped_store_path(self, demo):
        demo.set_config('path = "pkirepo.sqlite"', 'path = "pkirepo.sqlit"')
        p = demo.cli("crl", "list", check=False)
        assert p.returncode == 2 and "pkirepo.sqlit: no store here" in p.stderr, p.stderr
        assert not (demo.dir / "pkirepo.sqlit").exists()

    def test_empty_store_file(self, demo):
        _remove_store(demo)
        (demo.dir / "pkirepo.sqlite").write_bytes(b"")
        _assert_refused(_serve_exit(demo), "empty", "pkirepo recover")

    def test_init_creates_a_store_only_where_nothing_was_published(self, demo, tmp_path):
        _remove_store(demo)
        p = demo.cli("init", check=False)
        # CRLs are in the publication directory: an empty store would be behind them.
        assert p.returncode == 2 and "pkirepo recover" in p.stderr, p.stderr
        assert not (demo.dir / "pkirepo.sqlite").exists()
        shutil.rmtree(demo.dir / "pub")
        (demo.dir / "pkirepo.sqlite.published").unlink()
        assert demo.cli("init").returncode == 0
        assert (demo.dir / "pkirepo.sqlite").stat().st_size > 0
        p = demo.cli("init", check=False)
        assert p.returncode == 2 and "already there" in p.stderr


class TestDamagedStore:
    def test_garbage_store(self, demo):
        (demo.dir / "pkirepo.sqlite").write_bytes(b"this is not a database" * 100)
        for suffix in ("-wal", "-shm"):
            (demo.dir / f"pkirepo.sqlite{suffix}").unlink(missing_ok=True)
        p = demo.cli("crl", "list", check=False)
        assert p.returncode == 2 and "damaged" in p.stderr and "pkirepo check" in p.stderr, p.stderr
        assert "Traceback" not in p.stderr
        _assert_refused(_serve_exit(demo), "damaged", "pkirepo check")

    def test_truncated_store(self, demo):
        path = demo.dir / "pkirepo.sqlite"
        assert demo.cli("check").returncode == 0
        with open(path, "r+b") as f:
            f.truncate(path.stat().st_size // 3)
        p = demo.cli("check", check=False)
        assert p.returncode == 2 and "Traceback" not in p.stderr, p.stdout + p.stderr
        _assert_refused(_serve_exit(demo))


# The restart matrix: the store as it may be found at start, with or without the
# publication directory. Either the server serves CRLs numbered above every one published
# before and holding every revocation published before, or it refuses with exit 2.
STORES = ["empty", "missing", "older", "ahead"]


@pytest.mark.parametrize("pub", ["present", "absent"])
@pytest.mark.parametrize("store", STORES)
def test_restart_matrix(demo, tmp_path, store, pub):
    backup = tmp_path / "backup"
    _copy_store(demo, backup)  # before the revocation: an older store
    demo.cli("revoke", "--issuer", CA, "--serial", f"{_serial(demo, 'good.pem'):X}", "--reason", "keyCompromise")
    demo.cli("publish")
    published = _published(demo)
    if store == "ahead":
        pub_copy = tmp_path / "pub-copy"
        shutil.copytree(demo.dir / "pub", pub_copy)
        demo.cli("publish")  # the store (and watermark) move one CRL further ...
        shutil.rmtree(demo.dir / "pub")
        shutil.copytree(pub_copy, demo.dir / "pub")  # ... and the directory is restored behind them
    elif store == "older":
        _restore_store(demo, backup)
    elif store == "missing":
        _remove_store(demo)
    elif store == "empty":
        _remove_store(demo)
        (demo.dir / "pkirepo.sqlite").write_bytes(b"")
    if pub == "absent":
        shutil.rmtree(demo.dir / "pub")

    if store == "ahead":
        server = Server(demo)
        try:
            now = _published(demo)
            for name, (number, serials) in published.items():
                assert now[name][0] > number and now[name][1] >= serials, name
        finally:
            server.stop()
        return
    p = _serve_exit(demo)
    _assert_refused(p, "pkirepo recover")
    if pub == "present":
        assert _published(demo) == published  # nothing was rewritten


def test_recover_rebuilds_a_lost_store(demo):
    good = _serial(demo, "good.pem")
    demo.cli("revoke", "--issuer", CA, "--serial", f"{good:X}", "--reason", "keyCompromise")
    demo.cli("publish")
    before = _published(demo)
    assert any(good in serials for _, serials in before.values())
    _remove_store(demo)
    p = demo.cli("recover")
    assert "recovered:" in p.stdout, p.stdout
    assert demo.cli("check").returncode == 0
    p = demo.cli("publish")
    after = _published(demo)
    assert after.keys() == before.keys()
    for name, (number, serials) in before.items():
        assert after[name][0] == number + 1 and after[name][1] == serials, name


def test_recover_brings_an_older_store_forward(demo, tmp_path):
    backup = tmp_path / "backup"
    _copy_store(demo, backup)
    held = _serial(demo, "good.pem")
    demo.cli("hold", "--issuer", CA, "--serial", f"{held:X}")
    demo.cli("publish")
    before = _published(demo)
    _restore_store(demo, backup)
    _assert_refused(_serve_exit(demo), "the store is behind", "pkirepo recover")
    demo.cli("recover")
    # The hold came back from the CRL: releasing it is allowed, as for any held certificate.
    demo.cli("release", "--issuer", CA, "--serial", f"{held:X}")
    server = Server(demo)
    try:
        wait_until(lambda: all(_published(demo)[n][0] > before[n][0] for n in before
                               if held in before[n][1]), what="supplementary CRL after the release")
    finally:
        server.stop()
    for name, (number, _) in _published(demo).items():
        assert number >= before[name][0], name


def test_server_repairs_what_a_crashed_cli_left(demo):
    server = Server(demo)
    try:
        before = _published(demo)
        p = demo.cli("publish", check=False, env={"PKIREPO_CRASH_AT": "after-record"})
        assert p.returncode == KILLED
        # The store holds a new CRL whose file was never written; the running server writes
        # it within seconds.
        stored = _store_numbers(demo)
        assert any(stored[n] > before[n][0] for n in before)
        wait_until(lambda: all(_published(demo)[n][0] == stored[n] for n in before),
                   what="the publication directory to catch up with the store")
        p = demo.cli("publish", check=False, env={"PKIREPO_CRASH_AT": "mid-file-write"})
        assert p.returncode == KILLED
        wait_until(lambda: not list(demo.crl_dir.glob(".*.tmp")), what="the torn temporary file to go")
    finally:
        server.stop()
    assert demo.cli("check").returncode == 0
