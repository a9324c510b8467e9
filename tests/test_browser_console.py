"""The console in headless Chromium: the reports tab (figures match the API, charts, CSV/XLSX
downloads, the SMO's own slice) and the operator's routing buttons (level 2, an SMO, the
corruption flag reaching the anti-corruption officer's view).

The journal is built by replaying recorded traffic (tests/test_reports.build); SQLite only.
"""

from __future__ import annotations

from typing import Any

import pytest

from tests.browser_support import chromium, new_page, screenshot, sign_in
from tests.test_reports import build, periods_of
from tests.test_workflow import call, get

pytestmark = [pytest.mark.browser, pytest.mark.parametrize("db_backend", ["sqlite"])]

PASSWORD = "secret-pass-1"
SMO_NAMES = "SMO1=СМО «Здоровье»,SMO2=СМО «Надёжная»"


def as_text(value: Any) -> str:
    """A JSON figure as the page writes it into data-value (JS number → string)."""
    if value is None:
        return ""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


async def table_counts(page: Any, table_id: str) -> dict[str, int]:
    return await page.eval_on_selector_all(
        f"#{table_id} tbody tr[data-key]",
        "rows => Object.fromEntries(rows.map(r => [r.dataset.key, "
        "Number(r.querySelector('td[data-value]').dataset.value)]))")


async def open_reports(page: Any, base: str, login_name: str, home: str) -> None:
    await sign_in(page, base, login_name, PASSWORD)
    await page.wait_for_url(f"**{home}**")
    await page.wait_for_selector("body[data-ready='1']")
    await page.click("#tab-reports")
    await page.wait_for_selector("#report-body[data-state='ready']")


async def test_reports_tab_shows_the_apis_figures(make_settings: Any, start_service: Any,
                                                  replay_peer: Any) -> None:
    harness = await build(make_settings, start_service, replay_peer)
    month, quarter, _ = periods_of((await get(harness, 1))["created_at"])
    status, report = await call(harness, "GET",
                                f"/api/v1/reports/summary?period={month}&compare=1", "admin")
    assert status == 200, report
    base = harness.url("").rstrip("/")

    async with chromium() as browser:
        page = await new_page(browser)
        await open_reports(page, base, "admin", "/admin")
        assert await page.get_attribute("#report-body", "data-period") == month
        # The headline figures.
        for key, value in (("requests.total", report["requests"]["total"]),
                           *((f"calls.total.{m}", report["calls"]["total"][m]) for m in
                             ("offered", "answered", "abandoned", "service_level",
                              "avg_wait_s", "max_wait_s", "talk_s")),
                           ("callbacks.done_on_time", report["callbacks"]["done_on_time"])):
            shown = await page.get_attribute(f".kpi[data-figure='{key}'] .kpi-value",
                                             "data-value")
            assert shown == as_text(value), (key, shown, value)
        sl = report["calls"]["total"]["service_level"]
        assert (await page.text_content(
            ".kpi[data-figure='calls.total.service_level'] .kpi-value")) == \
            f"{sl * 100:.1f} %".replace(".", ",")
        # Requests by every dimension, as the API counts them.
        for dim in ("by_kind", "by_topic", "by_level", "by_smo", "by_status", "by_outcome",
                    "by_operator"):
            assert await table_counts(page, f"rep-{dim}") == report["requests"][dim], dim
        assert "Полис" in (await page.text_content("#rep-by_topic") or "") or \
            "policy" not in report["requests"]["by_topic"]
        # Calls per line and the total row, every metric.
        for line, figures in [*report["calls"]["by_line"].items(),
                              ("total", report["calls"]["total"])]:
            for metric in ("offered", "answered", "abandoned", "service_level", "avg_wait_s",
                           "max_wait_s", "talk_s", "avg_talk_s"):
                shown = await page.get_attribute(
                    f"#rep-lines tr[data-key='{line}'] td[data-metric='{metric}']", "data-value")
                assert shown == as_text(figures[metric]), (line, metric, shown)
        # The hour chart: one bar per hour and series; the calls' hours carry their counts.
        assert await page.locator("#chart-hours rect[data-bar]").count() == 24 * 3
        for hour, figures in report["calls"]["by_hour"].items():
            for series, metric in (("поступило", "offered"), ("отвечено", "answered"),
                                   ("потеряно", "abandoned")):
                shown = await page.get_attribute(
                    f"#chart-hours rect[data-bar='{hour}:{series}']", "data-value")
                assert shown == str(figures[metric])
        assert await page.locator("#chart-topics rect[data-bar]").count() == \
            len(report["requests"]["by_topic"])
        assert await table_counts(page, "rep-callbacks") == report["callbacks"]
        # Comparison with the previous month is on by default.
        assert "сравнение с" in (await page.text_content("#report-period") or "")
        # Downloads: the same query, served to the signed-in page (cookie).
        for link, kind in (("#report-csv", "text/csv"),
                           ("#report-xlsx", "application/vnd.openxmlformats")):
            href = await page.get_attribute(link, "href")
            assert href and f"period={month}" in href and "compare=1" in href
            got = await page.evaluate(
                "async (u) => { const r = await fetch(u); "
                "return [r.status, r.headers.get('content-type'), "
                "r.headers.get('content-disposition')]; }", href)
            assert got[0] == 200 and got[1].startswith(kind), got
            assert f"hotline-{month}" in got[2]
        await screenshot(page, "admin-reports-month")
        widths = await page.evaluate(
            "[document.documentElement.scrollWidth, document.documentElement.clientWidth]")
        assert widths[0] <= widths[1], widths

        # The quarter holds the same requests.
        await page.select_option("#r-kind", "quarter")
        await page.click("#report-submit")
        await page.wait_for_selector(f"#report-body[data-period='{quarter}']")
        assert await page.get_attribute(
            ".kpi[data-figure='requests.total'] .kpi-value", "data-value") == "4"
        assert not page.console_errors, page.console_errors

        # An SMO representative sees its own slice; the anti-corruption officer no reports.
        smo = await new_page(browser)
        await open_reports(smo, base, "smo1", "/requests")
        assert await smo.get_attribute(
            ".kpi[data-figure='requests.total'] .kpi-value", "data-value") == "1"
        assert await smo.locator("#r-smo-wrap").is_hidden()
        assert "СМО" in (await smo.text_content("#report-period") or "")
        assert not smo.console_errors, smo.console_errors
        anticor = await new_page(browser)
        await sign_in(anticor, base, "anticor", PASSWORD)
        await anticor.wait_for_selector("body[data-ready='1']")
        assert await anticor.locator("#tab-reports").is_hidden()


async def test_operator_routes_from_the_form_and_flags_corruption(
        make_settings: Any, start_service: Any, replay_peer: Any) -> None:
    harness = await build(make_settings, start_service, replay_peer, smo_names=SMO_NAMES)
    base = harness.url("").rstrip("/")

    async with chromium() as browser:
        # The anti-corruption officer is signed in and sees nothing yet.
        officer = await new_page(browser)
        await sign_in(officer, base, "anticor", PASSWORD)
        await officer.wait_for_url("**/admin**")
        await officer.wait_for_selector("body[data-ready='1']")
        assert "коррупц" in (await officer.text_content("#console-title") or "")
        await officer.wait_for_selector("#results tbody td.empty")

        operator = await new_page(browser)
        await sign_in(operator, base, "op101", PASSWORD)
        await operator.wait_for_url("**/operator")
        await operator.wait_for_selector("#conn[data-state='online']")

        async def open_request(number: int) -> None:
            await operator.fill("#open-number", str(number))
            await operator.click("#open-form button[type='submit']")
            await operator.wait_for_selector(f"#request-form[data-number='{number}']")

        # Request 1 (answered on level 1) → level 2.
        await open_request(1)
        await operator.click("#act-l2")
        await operator.click("dialog button[type='submit']")
        await operator.wait_for_selector("#req-status .status-transferred")
        assert (await operator.text_content("#req-level")) == "2 уровень"
        detail = await get(harness, 1)
        assert (detail["level"], detail["smo"], detail["status"]) == ("2", None, "transferred")

        # Request 2 (abandoned in the queue) → SMO2: it leaves the fund operator's scope.
        await open_request(2)
        await operator.click("#act-smo")
        await operator.select_option("#dlg-smo", "SMO2")
        await operator.click("dialog button[type='submit']")
        banner = operator.locator("#closed-banner")
        await banner.wait_for(state="visible")
        assert "СМО «Надёжная»" in (await banner.text_content() or "")
        assert await operator.locator("#f-full_name").is_disabled()
        detail = await get(harness, 2)
        assert (detail["level"], detail["smo"]) == ("smo", "SMO2")
        assert (await call(harness, "GET", "/api/v1/requests/2", "op101"))[0] == 404
        assert (await call(harness, "GET", "/api/v1/requests/2", "smo2"))[0] == 200

        # Request 1 again: the corruption flag, saved from the form.
        await open_request(1)
        await operator.check("#f-corruption")
        await operator.click("#save")
        await operator.wait_for_selector("#form-banner.alert-success")
        await screenshot(operator, "operator-routing-corruption")
        assert (await get(harness, 1))["corruption"] is True
        assert not operator.console_errors, operator.console_errors

        # The officer's list picks it up live; only the flagged request is there.
        row = officer.locator("#results tbody tr[data-number='1']")
        await row.wait_for(timeout=10_000)
        assert await officer.locator("#results tbody tr[data-number]").count() == 1
        kinds = await officer.evaluate("window.__hotlineEvents.map(f => f.type)")
        assert "request.corruption" in kinds
        await row.click()
        await officer.wait_for_selector("#request-form[data-number='1']")
        assert await officer.locator("#f-corruption").is_checked()
        assert await officer.locator("#f-full_name").is_disabled()
        assert await officer.locator("#save").is_hidden()
        assert await officer.locator("#act-l2").count() == 0
        assert await officer.locator("#close-request").is_hidden()
        await screenshot(officer, "anticorruption-view")
        assert not officer.console_errors, officer.console_errors
    # Only what is flagged, through the API as well.
    status, listing = await call(harness, "GET", "/api/v1/requests", "anticor")
    assert status == 200 and [i["number"] for i in listing["items"]] == [1]
