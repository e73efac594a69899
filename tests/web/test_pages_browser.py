"""The web pages in a real browser: headless Chromium drives the home page of a real
`pkirepo serve`, follows its links to a CRL and to an earlier CPS version and gets their
exact bytes, switches language, renders Chinese with a CJK font (screenshots in the test's
tmp dir), breaks no Content-Security-Policy rule, fits a phone's width, and axe-core finds no
serious or critical accessibility violation in either language (on the trust list's page too)."""
from __future__ import annotations

import hashlib

import pytest

from web_testlib import axe_violations

# The trust list's page (its own front-end) gets the same checks as ours.
PAGES = ["/", "/documents/", "/relying-parties", "/trustlist/"]


@pytest.fixture(scope="module")
def context(browser, site):
    """A browser whose user prefers Traditional Chinese (Hong Kong), as the demo's users would."""
    ctx = browser.new_context(locale="zh-HK", base_url=site.base_url, accept_downloads=True)
    yield ctx
    ctx.close()


def _csp_reports(page) -> list[str]:
    reports: list[str] = []
    page.on("console", lambda m: reports.append(m.text) if "Content Security Policy" in m.text else None)
    return reports


def _fonts_of(context, page, selector: str) -> dict[str, int]:
    """The platform fonts Chromium used to draw the text of `selector`, with glyph counts."""
    cdp = context.new_cdp_session(page)
    try:
        cdp.send("DOM.enable")
        cdp.send("CSS.enable")
        root = cdp.send("DOM.getDocument")["root"]["nodeId"]
        node = cdp.send("DOM.querySelector", {"nodeId": root, "selector": selector})["nodeId"]
        fonts = cdp.send("CSS.getPlatformFontsForNode", {"nodeId": node})["fonts"]
    finally:
        cdp.detach()
    return {f["familyName"]: f["glyphCount"] for f in fonts}


def test_home_page_links_lead_to_the_published_bytes(context, site, tmp_path):
    page = context.new_page()
    csp = _csp_reports(page)
    response = page.goto("/")
    assert response.status == 200
    assert response.headers["content-language"] == "zh-Hant"
    assert page.locator("html").get_attribute("lang") == "zh-Hant"
    assert page.locator("h1").inner_text() == "憑證儲存庫"
    # The Chinese heading is drawn with a CJK font, not boxes.
    fonts = _fonts_of(context, page, "h1")
    assert any("CJK" in name and count >= 5 for name, count in fonts.items()), fonts
    page.screenshot(path=tmp_path / "home.zh-Hant.png", full_page=True)

    # The full CRL's HTTP link: its row's link, followed, gives the published CRL's bytes.
    link = page.locator("tr", has_text="eCertCA2-17CRL1").get_by_role("link", name="HTTP")
    with page.expect_download() as download:
        link.click()
    got = download.value.path().read_bytes()
    assert got == (site.crl_dir / "eCertCA2-17CRL1.crl").read_bytes()
    fetched = context.request.get(link.get_attribute("href"))
    assert fetched.headers["content-type"] == "application/pkix-crl" and fetched.body() == got

    # Switch to English, by the link.
    page.get_by_role("link", name="English").click()
    page.wait_for_load_state()
    assert page.url.endswith("/?lang=en")
    assert page.locator("html").get_attribute("lang") == "en"
    assert page.locator("h1").inner_text() == "Certificate repository"
    assert "Scheduled maintenance: repository and OCSP" in page.locator("section[aria-labelledby=notices]").inner_text()
    page.screenshot(path=tmp_path / "home.en.png", full_page=True)

    # The disclosure record, and the earlier CPS version from it: its exact bytes.
    page.get_by_role("link", name="Disclosure record: every version ever published").click()
    page.wait_for_load_state()
    old = page.get_by_role("link", name="documents/cps/1.0/zh-Hant.pdf")
    pdf = context.request.get(old.get_attribute("href"))
    want = (site.dir / "pub" / "documents" / "cps" / "1.0" / "zh-Hant.pdf").read_bytes()
    assert pdf.status == 200 and pdf.headers["content-type"] == "application/pdf"
    assert pdf.body() == want and hashlib.sha256(want).hexdigest() in page.content()
    assert csp == []
    page.close()


def test_a_phone_sees_the_page_without_sideways_scrolling(browser, site, tmp_path):
    ctx = browser.new_context(base_url=site.base_url, viewport={"width": 390, "height": 844}, device_scale_factor=2,
                              is_mobile=True, has_touch=True, locale="zh-TW")
    try:
        page = ctx.new_page()
        page.goto("/")
        assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")
        page.screenshot(path=tmp_path / "home.phone.png", full_page=True)
    finally:
        ctx.close()


@pytest.mark.parametrize("lang", ["zh-Hant", "en"])
def test_no_serious_accessibility_violation(context, lang):
    page = context.new_page()
    try:
        for path in PAGES:
            page.goto(f"{path}?lang={lang}")
            assert page.locator("html").get_attribute("lang") == lang
            bad = axe_violations(page)
            assert bad == [], (path, lang, [(v["id"], v["impact"], v["help"]) for v in bad])
    finally:
        page.close()
