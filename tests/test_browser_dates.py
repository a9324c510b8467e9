"""Date fields on the pages read дд.мм.гггг whatever the browser's language (issue 15): an
English-language Chromium shows and takes the Russian format, and the API gets ISO dates."""

from __future__ import annotations

from typing import Any

import pytest

from tests.browser_support import TIMEOUT_MS, chromium, sign_in
from tests.helpers import create_user

pytestmark = [pytest.mark.browser, pytest.mark.parametrize("db_backend", ["sqlite"])]
PASSWORD = "secret-pass-1"
DATE_FIELDS = ("#q-from", "#q-to", "#a-from", "#a-to")


async def test_date_fields_show_and_take_dd_mm_yyyy_in_an_english_browser(
        make_settings: Any, start_service: Any) -> None:
    harness = await start_service(make_settings(ami_host=None), http=True, connect_ami=False)
    await create_user(harness.services, "chief", "admin", password=PASSWORD)
    base = harness.url("").rstrip("/")
    async with chromium() as browser:
        context = await browser.new_context(locale="en-US", timezone_id="Europe/Moscow")
        context.set_default_timeout(TIMEOUT_MS)
        page = await context.new_page()
        asked: list[str] = []
        page.on("request", lambda r: asked.append(r.url) if "/api/v1/" in r.url else None)
        await sign_in(page, base, "chief", PASSWORD)
        await page.wait_for_url("**/admin**")
        for selector in DATE_FIELDS:
            field = page.locator(selector)
            assert await field.get_attribute("type") == "text"
            assert await field.get_attribute("placeholder") == "дд.мм.гггг"
        # Typed digits get their dots; the search asks the API in ISO ("по" a day: up to its end).
        await page.locator("#q-from").press_sequentially("01112026")
        assert await page.locator("#q-from").input_value() == "01.11.2026"
        await page.fill("#q-to", "30.11.2026")
        asked.clear()
        await page.locator("#search button[type=submit]").click()
        await page.wait_for_function("document.querySelector('#results tbody').children.length")
        searches = [url for url in asked if "/api/v1/requests?" in url]
        assert searches and "from=2026-11-01" in searches[-1] and "to=2026-12-01" in searches[-1]
        # A date that does not exist is refused on the page, in Russian.
        asked.clear()
        await page.fill("#q-from", "31.02.2026")
        await page.locator("#search button[type=submit]").click()
        await page.wait_for_function(
            "document.getElementById('search-error').textContent.includes('дд.мм.гггг')")
        assert not [url for url in asked if "/api/v1/requests?" in url]
        # The conversion the dialogs (deferred answer's due time) use as well.
        converted = await page.evaluate("""async () => {
            const m = await import('/static/common.js');
            return ['31.12.2026 18:30', '1.2.2027', '', '2026-12-31', '29.02.2027',
                    '01.01.2027 24:00'].map(m.isoFromRuDate);
        }""")
        assert converted == ["2026-12-31T18:30", "2027-02-01", "", None, None, None]
        await context.close()
