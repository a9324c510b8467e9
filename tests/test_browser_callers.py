"""Issue 10, item 9: a caller ID with bidi overrides or of 20,000 characters leaves the pages'
layout alone (isolated, controls dropped, clipped), in the journal list, the request card and
the operator's screen pop."""

from __future__ import annotations

from typing import Any

from sqlalchemy import update

from journal.models import Call, Request
from tests.browser_support import chromium, new_page, sign_in
from tests.test_workflow import journal_with

RLO_CALLER = "\u202e+79161234567\u202c"
LONG_CALLER = "\u202e" + "9" * 20_000

# Renders a pop-like card with a 20,000-character caller the way operator.js does, and
# measures it against the card's box.
MEASURE_POP = """async (caller) => {
  const { callerText, h } = await import('/static/common.js');
  const card = h('section', { class: 'call-card' },
    h('div', { class: 'call-caller', id: 'probe-caller' }, callerText(caller, 'нет')));
  card.style.width = '320px';  // CSSOM: the pages' CSP refuses style attributes
  document.body.append(card);
  const inner = card.querySelector('.caller');
  const result = { cardWidth: card.getBoundingClientRect().width,
    callerWidth: inner.getBoundingClientRect().width,
    pageWidth: document.documentElement.scrollWidth, viewport: window.innerWidth,
    text: inner.textContent, bidi: getComputedStyle(inner).unicodeBidi,
    height: inner.getBoundingClientRect().height };
  card.remove();
  return result;
}"""


async def test_rtl_override_and_huge_callers_do_not_break_the_pages(
        make_settings: Any, start_service: Any, replay_peer: Any) -> None:
    harness = await journal_with(["s01-answered-l1"], make_settings, start_service, replay_peer)
    async with harness.services.db.sessions.begin() as session:
        await session.execute(update(Request).values(caller_number=RLO_CALLER))
        await session.execute(update(Call).values(caller_number=RLO_CALLER))
    base = harness.url("").rstrip("/")
    async with chromium() as browser:
        page = await new_page(browser)
        await sign_in(page, base, "admin", "secret-pass-1")
        await page.wait_for_url("**/admin**")
        cell = page.locator("#results tbody tr[data-number='1'] td .caller")
        await cell.wait_for()
        assert await cell.text_content() == "+79161234567"  # the override is gone
        assert await cell.get_attribute("dir") == "ltr"
        assert await cell.evaluate("e => e.tagName") == "BDI"
        # The row's other cells keep their order (an override would have reversed them).
        row = page.locator("#results tbody tr[data-number='1']")
        assert (await row.locator("td").first.text_content() or "").startswith("№ 1")
        await page.goto(base + "/admin#/requests/1")
        caller = page.locator("#req-caller .caller")
        await caller.wait_for()
        assert await caller.text_content() == "+79161234567"
        probe = await page.evaluate(MEASURE_POP, LONG_CALLER)
        assert probe["bidi"] == "isolate"
        assert "\u202e" not in probe["text"] and len(probe["text"]) <= 41
        assert probe["cardWidth"] <= 320.5 and probe["callerWidth"] <= probe["cardWidth"], probe
        assert probe["height"] < 60, probe  # one line, not 20,000 characters wrapped
        assert probe["pageWidth"] <= probe["viewport"], probe
        assert not page.console_errors, page.console_errors  # type: ignore[attr-defined]
