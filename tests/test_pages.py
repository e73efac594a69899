"""The pure page rendering (publisher.pages): what the home page says about the service's
status, which maintenance windows it announces, and that every value is escaped, with no
server, in both languages."""
from __future__ import annotations

import datetime as dt

import pytest

from publisher import pages
from publisher.crl import ScopeKind
from publisher.maintenance import Window
from publisher.store import CrlRecord, NoticeRecord, Scope

NOW = dt.datetime(2026, 12, 1, 12, 0, tzinfo=dt.timezone.utc)
HOUR = dt.timedelta(hours=1)


def crl_view(name: str, next_update: dt.datetime) -> pages.CrlView:
    rec = CrlRecord(1, Scope(1, 1, ScopeKind.FULL, "", name), 7, NOW - HOUR, next_update, "00" * 32, 700, 3, 1,
                    NOW - HOUR, "signed")
    return pages.CrlView(name, "full", "CA", rec, f"http://x/crl/{name}.crl", None, next_update > NOW)


def notice(i: int, kind: str, starts: dt.datetime, ends: dt.datetime | None, title: str = "t") -> NoticeRecord:
    return NoticeRecord(i, kind, {"zh-Hant": title, "en": title}, {"zh-Hant": "b", "en": "b"}, starts, ends, NOW)


def render(lang: str, crls, notices) -> str:
    status = pages.service_status(crls, pages.announced_maintenance(notices, lang, NOW))
    return pages.render_home(lang=lang, cas=[], crls=crls, ocsp_url=None, documents=[], notices=notices,
                             status=status, now=NOW)


@pytest.mark.parametrize("lang", ["zh-Hant", "en"])
def test_a_crl_past_its_next_update_is_named_under_status(lang):
    page = render(lang, [crl_view("Fresh", NOW + HOUR), crl_view("Stale<1>", NOW - HOUR)], [])
    status = page[page.index('id="status"'):page.index('id="notices"')]
    assert 'class="warn"' in status and "Stale&lt;1&gt;" in status and "Fresh" not in status
    assert f'<html lang="{lang}">' in page


def test_every_crl_current_is_said_so():
    page = render("en", [crl_view("Fresh", NOW + HOUR)], [])
    assert "Every published CRL and ARL is current" in page and 'class="warn"' not in page


def test_only_maintenance_not_yet_over_is_announced():
    notices = [notice(1, "maintenance", NOW - 3 * HOUR, NOW - 2 * HOUR, "Past window"),
               notice(2, "maintenance", NOW + 48 * HOUR, NOW + 49 * HOUR, "Later window"),
               notice(3, "maintenance", NOW - HOUR, NOW + HOUR, "Now window"),
               notice(4, "incident", NOW - HOUR, NOW + HOUR, "Not maintenance")]
    windows = pages.announced_maintenance(notices, "en", NOW)
    assert [w.title for w in windows] == ["Now window", "Later window"]
    page = render("en", [], notices)
    status = page[page.index('id="status"'):page.index('id="notices"')]
    assert "Now window" in status and "Later window" in status and "Past window" not in status
    assert "Past window" in page  # still a notice until withdrawn


def test_the_maintenance_schedule_is_announced_with_the_notices():
    """Windows of `pkirepo maintenance` show beside the notices' own: not cancelled or over,
    emergency maintenance under way without an end, a window a notice announces once."""
    windows = [Window(1, NOW + 24 * HOUR, NOW + 25 * HOUR, "Scheduled <db>", "scheduled", NOW),
               Window(2, NOW + 30 * HOUR, NOW + 31 * HOUR, "Cancelled", "scheduled", NOW, cancelled_at=NOW),
               Window(3, NOW - 2 * HOUR, NOW - HOUR, "Over", "scheduled", NOW),
               Window(4, NOW - HOUR, None, "Emergency", "emergency", NOW),
               Window(5, NOW + 48 * HOUR, NOW + 49 * HOUR, "Same as the notice", "scheduled", NOW)]
    notices = [notice(1, "maintenance", NOW + 48 * HOUR, NOW + 49 * HOUR, "Notice window")]
    got = pages.announced_maintenance(notices, "en", NOW, windows)
    assert [(w.title, w.notice_id) for w in got] == [
        ("Emergency", None), ("Scheduled <db>", None), ("Notice window", 1)]
    status = pages.service_status([], got)
    page = pages.render_home(lang="zh-Hant", cas=[], crls=[], ocsp_url=None, documents=[], notices=notices,
                             status=status, now=NOW)
    assert "Scheduled &lt;db&gt;" in page and "進行中，直至結束" in page and "Cancelled" not in page


def test_a_page_language_is_required():
    with pytest.raises(ValueError):
        render("fr", [], [])
