"""The analytical reports in headless Chromium (issue 15 item 2): each report chosen on the
reports tab renders the API's figures (tables, totals, charts, the comparison of periods),
the register lists the cards, and the quarterly workbook downloads as a real XLSX with a
sheet per report. The journal: tests/test_reports_analytics.journal; SQLite only."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import pytest
from openpyxl import load_workbook

from hotline.web.openapi import build_spec
from journal.analytics import REPORTS
from tests.browser_support import chromium, new_page, screenshot
from tests.test_browser_console import as_text, open_reports
from tests.test_reports import periods_of
from tests.test_reports_analytics import FUND, journal
from tests.test_workflow import call, get

pytestmark = [pytest.mark.browser, pytest.mark.parametrize("db_backend", ["sqlite"])]


async def choose(page: Any, key: str) -> None:
    await page.select_option("#r-report", key)
    await page.click("#report-submit")
    await page.wait_for_selector(f"#report-body[data-report='{key}'][data-state='ready']")


async def test_each_report_renders_and_the_workbook_downloads(
        make_settings: Any, start_service: Any, replay_peer: Any, tmp_path: Path) -> None:
    harness = await journal(make_settings, start_service, replay_peer)
    month = periods_of((await get(harness, 1))["created_at"])[0]
    base = harness.url("").rstrip("/")
    assert set(REPORTS) | {"register"} <= {
        p.rsplit("/", 1)[-1] for p in build_spec()["paths"] if "/reports/" in p}

    async with chromium() as browser:
        page = await new_page(browser)
        await open_reports(page, base, "admin", "/admin")
        for key in REPORTS:
            status, report = await call(harness, "GET", f"/api/v1/reports/{key}?period={month}",
                                        "admin")
            assert status == 200, report
            await choose(page, key)
            for figure, value in report["headline"].items():
                shown = await page.get_attribute(
                    f"#rep-compare tr[data-key='{figure}'] td[data-period='current']",
                    "data-value")
                assert shown == as_text(value), (key, figure, shown, value)
            for section in report["sections"]:
                for column in section["columns"][1:]:
                    if section["totals"] is None:
                        break
                    shown = await page.get_attribute(
                        f"#rep-{section['key']} tfoot td[data-metric='{column['key']}']",
                        "data-value")
                    assert shown == as_text(section["totals"][column["key"]]), \
                        (key, section["key"], column["key"], shown)
                rows = await page.locator(f"#rep-{section['key']} tbody tr[data-key]").count()
                assert rows == len(section["rows"]), (key, section["key"])
                if section["chart"] and section["rows"]:
                    assert await page.locator(
                        f"#chart-{section['key']} rect").count() == len(section["rows"])
            href = await page.get_attribute("#report-xlsx", "href")
            assert href and f"/api/v1/reports/{key}.xlsx?period={month}" in href
        await screenshot(page, "admin-reports-service-level")

        await choose(page, "register")
        assert await page.locator("#rep-register tbody tr[data-key]").count() == 4
        assert await page.get_attribute("#rep-register-count", "data-total") == "4"

        async with page.expect_download() as info:
            await page.click("#report-workbook")
        download = await info.value
        target = tmp_path / "workbook.xlsx"
        await download.save_as(target)
        book = load_workbook(io.BytesIO(target.read_bytes()))
        assert len(book.worksheets) == len(REPORTS)
        assert all(sheet["A1"].value == FUND for sheet in book.worksheets)
        assert not page.console_errors, page.console_errors
