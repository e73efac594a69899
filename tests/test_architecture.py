"""The layers of pyproject.toml's import-linter contracts hold, and every module is placed in
them, so a new module cannot slip past the architecture unchecked."""
from __future__ import annotations

import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
CONTRACTS = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["importlinter"]["contracts"]

# Above the core: they may know the front-ends (and the root knows them all).
ENTRY_AND_ROOT = {"publisher.cli", "publisher.demo", "publisher.server", "publisher.root"}
FRONT_ENDS = {"publisher.http", "ocsp", "ldap", "publisher.trustlist_web", "publisher.admin_api"}
BACKGROUND_LIBRARIES = ("aiohttp", "twisted", "ldaptor", "zope", "aiosqlite")


def _contract(name_start: str) -> dict:
    return next(c for c in CONTRACTS if c["name"].startswith(name_start))


def _modules(package: str) -> set[str]:
    return {f"{package}.{p.stem}" for p in (ROOT / package).glob("*.py") if p.stem != "__init__"}


def test_lint_imports_passes():
    lint = Path(sys.executable).parent / "lint-imports"
    r = subprocess.run([str(lint), "--no-cache"], cwd=ROOT, capture_output=True, text=True, timeout=240)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "BROKEN" not in r.stdout and "0 broken" in r.stdout


def test_every_publisher_module_is_placed_in_a_layer():
    core = set(_contract("The core never reaches up")["source_modules"])
    placed = core | ENTRY_AND_ROOT | FRONT_ENDS
    assert _modules("publisher") - placed == set(), "add new modules to pyproject.toml's contracts"
    assert placed - _modules("publisher") - {"ocsp", "ldap"} == set(), "a contract names a module that is gone"


def test_the_contracts_name_the_front_ends():
    assert set(_contract("Front-ends are independent")["modules"]) == FRONT_ENDS
    assert set(_contract("Front-ends never import")["source_modules"]) == FRONT_ENDS
    assert set(_contract("Front-ends never import")["forbidden_modules"]) == ENTRY_AND_ROOT


@pytest.mark.parametrize("package", ["publisher", "ocsp", "ldap"])
def test_pure_modules_exist(package):
    """The pure-core contract names only real modules (a rename would silently drop one)."""
    pure = [m for m in _contract("The pure cores")["source_modules"] if m.startswith(package + ".")]
    assert pure and set(pure) <= _modules(package)


def test_importing_the_core_leaves_twisted_and_aiohttp_out():
    core = sorted(set(_contract("The pure cores")["source_modules"]))
    code = (
        "import importlib, sys\n"
        f"for m in {core!r}: importlib.import_module(m)\n"
        f"print(sorted(m for m in sys.modules if m.split('.')[0] in {BACKGROUND_LIBRARIES!r}))\n"
    )
    r = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "[]"


def test_the_root_imports_every_front_end():
    """The composition root is where front-ends plug in: it imports each of them."""
    code = ("import sys, publisher.root; print(sorted(m for m in ('ocsp.http', 'ldap.service', 'publisher.http', "
            "'publisher.trustlist_web', 'publisher.admin_api') if m in sys.modules))")
    r = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == ("['ldap.service', 'ocsp.http', 'publisher.admin_api', 'publisher.http', "
                                "'publisher.trustlist_web']")
