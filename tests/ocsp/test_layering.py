"""How the ocsp package's modules may import each other and the I/O libraries."""
from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

OCSP = Path(__file__).resolve().parents[2] / "ocsp"
IO_LIBRARIES = ("aiohttp", "twisted", "ldaptor", "aiosqlite")
# Codec and decision modules: bytes, objects and `now` in, results out.
PURE = ("ocsp.request", "ocsp.response", "ocsp.errors", "ocsp.entry", "ocsp.request_decoder")


def _ocsp_imports(path: Path) -> set[str]:
    """Sibling modules `path` imports, at any depth (function-level imports included)."""
    out = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            if node.level == 1:
                base = node.module
            elif node.level == 0 and node.module and node.module.split(".")[0] == "ocsp":
                base = node.module.partition(".")[2] or None
            else:
                continue
            names = [base] if base else [a.name for a in node.names]
            out.update(n.split(".")[0] for n in names)
        elif isinstance(node, ast.Import):
            out.update(a.name.split(".")[1] for a in node.names if a.name.startswith("ocsp."))
    return out


def test_no_import_cycles():
    modules = {p.stem for p in OCSP.glob("*.py")}
    graph = {m: _ocsp_imports(OCSP / f"{m}.py") & modules for m in modules}
    done: set[str] = set()

    def visit(m: str, path: list[str]) -> None:
        for n in graph[m]:
            assert n not in path, f"import cycle: {' -> '.join(path[path.index(n):] + [n])}"
            if n not in done:
                visit(n, path + [n])
        done.add(m)

    for m in sorted(modules):
        visit(m, [m])


@pytest.mark.parametrize("module", PURE)
def test_pure_modules_import_no_io_library(module):
    code = (f"import sys, {module}; "
            f"print(' '.join(n for n in {IO_LIBRARIES!r} if any(k == n or k.startswith(n + '.') for k in sys.modules)))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         cwd=OCSP.parent).stdout.strip()
    assert out == "", f"{module} imports {out}"
