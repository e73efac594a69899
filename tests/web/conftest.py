"""The browser the web-page tests drive: Debian's Chromium (/usr/bin/chromium) through
Playwright, headless, one per test module. Playwright's own browser download is not used;
`make sysdeps` installs chromium and fonts-noto-cjk (the Chinese glyphs of the screenshots).

A served demo with its documents and notices, also one per module, is here too: the pages
of the trust list get the same checks with these fixtures."""
from __future__ import annotations

import os
import shutil
import subprocess

import pytest

from repo_testlib import Server, make_demo

CHROMIUM = "/usr/bin/chromium"
# As root Chromium needs --no-sandbox; the rest keep it from calling home from a machine
# without network, which would only slow it down.
CHROMIUM_ARGS = ["--no-sandbox", "--disable-background-networking", "--disable-component-update",
                 "--no-first-run", "--disable-sync", "--disable-dev-shm-usage"]


def _require_tools() -> None:
    if not os.access(CHROMIUM, os.X_OK):
        pytest.fail(f"{CHROMIUM} is missing: run `make sysdeps` (as root) or apt-get install chromium")
    fonts = subprocess.run(["fc-list"], capture_output=True, text=True).stdout if shutil.which("fc-list") else ""
    if "Noto Sans CJK" not in fonts:
        pytest.fail("the Noto CJK fonts are missing: run `make sysdeps` (as root) or apt-get install fonts-noto-cjk")


@pytest.fixture(scope="module")
def browser():
    """A headless Chromium for the module's tests."""
    from playwright.sync_api import sync_playwright

    _require_tools()
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        try:
            yield b
        finally:
            b.close()


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    """A demo with its sample documents and notices, served by `pkirepo serve`."""
    demo = make_demo(tmp_path_factory.mktemp("site") / "demo", subscribers=10, bare=False)
    server = Server(demo)
    yield demo
    server.stop()
