"""Helpers for the web-page tests, in a module of their own: `from conftest import ...` would
pick whichever of the suite's conftest.py files was loaded first."""
from __future__ import annotations


def axe_violations(page, *, impacts=("serious", "critical")) -> list[dict]:
    """axe-core's violations of the given impacts on the page as it is."""
    from axe_playwright_python.sync_playwright import Axe

    results = Axe().run(page)
    return [v for v in results.response["violations"] if v.get("impact") in impacts]
