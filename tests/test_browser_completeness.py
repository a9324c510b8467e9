"""The completeness card on the administrator console and a recovered call's timeline, in real
headless Chromium: a fixture day of CEL where one answered call's recording never arrived."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pytest

from tests.browser_support import chromium, new_page, screenshot, sign_in
from tests.cel_fixtures import cel_rows
from tests.conftest import scenario_dirs
from tests.helpers import create_user, wait_for
from tests.test_cel_backfill import make_cel, settle
from tests.test_cel_completeness import day_of

pytestmark = [pytest.mark.browser, pytest.mark.parametrize("db_backend", ["sqlite"])]
SCENARIOS = scenario_dirs()


async def test_completeness_card_lists_the_mismatch(
        db_url: tuple[str, str | None], tmp_path: Path, make_settings: Any,
        start_service: Any) -> None:
    chosen = [s for s in SCENARIOS if s.name.startswith(("s01", "s02", "s04"))]
    lost = next(s for s in chosen if s.name.startswith("s04"))
    recordings = tmp_path / "recordings"
    for scenario in chosen:
        if scenario != lost:
            shutil.copytree(scenario / "recordings", recordings, dirs_exist_ok=True)
    rows = [row for scenario in chosen for row in cel_rows(scenario)]
    cel_url, table = await make_cel(db_url, tmp_path, rows)
    settings = make_settings(ami_host=None, recordings_dir=recordings, cel_url=cel_url,
                             cel_table=table, cel_lookback_h=24 * 3650.0,
                             recordings_missing_after_s=0.01)
    harness = await start_service(settings, http=True)
    services = harness.services
    await wait_for(lambda: services.backfill.runs >= 1)
    await settle(services)
    await services.recordings.rescan()
    await create_user(services, "chief", "admin")
    base = harness.url("").rstrip("/")
    day = day_of(lost)

    async with chromium() as browser:
        page = await new_page(browser, 1280, 900)
        await sign_in(page, base, "chief", "secret-pass-1")
        await page.wait_for_url("**/admin**")
        await page.wait_for_selector("body[data-ready='1']")
        await page.click("#tab-audit")
        await page.fill("#cmp-date", day.strftime("%d.%m.%Y"))
        await page.click("#cmp-form button[type=submit]")
        await page.wait_for_selector("#cmp-mismatches tbody tr")
        assert await page.text_content("#cmp-calls") == "3"
        assert await page.text_content("#cmp-requests") == "3"
        kinds = await page.locator("#cmp-mismatches tbody tr").evaluate_all(
            "rows => rows.map(r => r.dataset.kind)")
        assert kinds == ["no_recording"]
        assert await page.get_attribute("[data-complete]", "data-complete") == "false"
        await screenshot(page, "admin-completeness")
        await page.click("#cmp-mismatches tbody a")
        await page.wait_for_selector(".badge.recovered")
        assert "восстановлен по CEL" in (await page.text_content("#timeline") or "")
        await screenshot(page, "admin-recovered-call")
        assert not page.console_errors, page.console_errors
