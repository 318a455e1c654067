"""The admin page in a real headless Chromium: log in with the token, see a seeded rejection, screenshot.

Chromium is Debian's (``scripts/install-browser``); Playwright's Python package only drives it, it never
downloads a browser. Without either the test is skipped loudly, unless VOICEBOOK_TEST_REQUIRE_BROWSER=1
(CI), where that is a failure.
"""

from __future__ import annotations

import importlib.util
import os
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import create_engine, insert
from tests.test_ops_e2e import REPO, served

from voicebook.db.models import GuardEvent

CHROMIUM = Path("/usr/bin/chromium")
TOKEN = "browser-test-token-8d2e"
SCREENSHOT = REPO / "test-artifacts" / "admin.png"  # English
SCREENSHOT_DE = REPO / "test-artifacts" / "admin-de.png"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def browser_or_skip() -> None:
    missing = [
        what
        for what, present in (
            (str(CHROMIUM), CHROMIUM.exists()),
            ("the playwright package", importlib.util.find_spec("playwright") is not None),
        )
        if not present
    ]
    if not missing:
        return
    message = (
        f"BROWSER TEST NOT RUN: {' and '.join(missing)} missing "
        "(scripts/install-browser; .venv/bin/pip install playwright)"
    )
    if os.environ.get("VOICEBOOK_TEST_REQUIRE_BROWSER") == "1":
        pytest.fail(message + " (VOICEBOOK_TEST_REQUIRE_BROWSER=1)", pytrace=False)
    pytest.skip(message)


def seed_rejection(database_url: str) -> str:
    reason = "metadata.call_id call_687 != call_688 (seeded for the browser test)"
    engine = create_engine(database_url)
    try:
        with engine.begin() as conn:
            conn.execute(
                insert(GuardEvent).values(
                    created_at=datetime.now(UTC),
                    layer="layer2",
                    verdict="CALL ID MISMATCH",
                    reason=reason,
                    call_id="call_688",
                    attempt_id="c" * 32,
                    calcom_booking_uid="uid-browser-test",
                )
            )
    finally:
        engine.dispose()
    return reason


@pytest.mark.slow
def test_login_see_rejection_and_screenshot(tmp_path: Path) -> None:
    browser_or_skip()
    from playwright.sync_api import expect, sync_playwright

    with served(tmp_path, VOICEBOOK_ADMIN_TOKEN=TOKEN) as server:
        reason = seed_rejection(server.database_url)
        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, timeout=60_000)
            try:
                page = browser.new_page(viewport={"width": 1280, "height": 900}, locale="de-DE")
                page.set_default_timeout(20_000)
                first = page.goto(f"{server.base_url}/admin")
                assert first is not None
                assert first.status == 401
                expect(page.locator("form[action='/admin/login']")).to_be_visible()

                page.fill("#token", "wrong")
                page.click("button[type=submit]")
                expect(page.locator("#login-error")).to_be_visible()

                page.fill("#token", TOKEN)
                page.click("button[type=submit]")
                page.wait_for_url("**/admin?lang=de")
                events = page.locator("#guard-events")
                expect(events).to_contain_text("CALL ID MISMATCH")
                expect(events).to_contain_text(reason)
                expect(page.locator("#hourly-chart rect.bar-rejected")).to_have_count(1)
                expect(page.locator("h1")).to_have_text("voicebook – Betrieb")
                # The stylesheet is a static file now (no inline style): it must still apply.
                background = page.locator("#figures").evaluate("e => getComputedStyle(e).backgroundColor")
                assert background == "rgb(255, 255, 255)"
                expect(page.locator("#upcoming-appointments")).to_be_visible()
                SCREENSHOT_DE.parent.mkdir(parents=True, exist_ok=True)
                page.screenshot(path=str(SCREENSHOT_DE), full_page=True)

                cookies = page.context.cookies()
                session = [c for c in cookies if c["name"] == "voicebook_admin"]
                assert session
                assert session[0]["httpOnly"] is True
                assert session[0]["sameSite"] == "Strict"
                assert TOKEN not in session[0]["value"]

                page.goto(f"{server.base_url}/admin?lang=en")
                expect(page.locator("#guard-events h2")).to_have_text("Guard events")

                SCREENSHOT.parent.mkdir(parents=True, exist_ok=True)
                page.screenshot(path=str(SCREENSHOT), full_page=True)
            finally:
                browser.close()
    assert SCREENSHOT.stat().st_size > 10_000
    assert SCREENSHOT_DE.stat().st_size > 10_000
