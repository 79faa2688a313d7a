"""Headless Chromium through Playwright (sync API), for the console's browser tests.

The browser is the system's (Debian's ``chromium``; ``$CHROMIUM`` names another), never one
Playwright downloads. Without Playwright or a browser these tests skip, saying which is
missing; ``nox -s console`` installs both where it can. Screenshots go to
``$CONSOLE_ARTIFACTS`` (the nox session keeps them in .nox/console/tmp), else build/.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]


def chromium_path() -> str | None:
    for candidate in (os.environ.get("CHROMIUM"), "chromium", "chromium-browser"):
        if candidate and (found := shutil.which(candidate)):
            return found
    return None


@pytest.fixture(scope="session")
def artifacts() -> Path:
    folder = Path(os.environ.get("CONSOLE_ARTIFACTS") or ROOT / "build" / "console-screenshots")
    folder.mkdir(parents=True, exist_ok=True)
    return folder


@pytest.fixture(scope="session")
def browser() -> Iterator[Any]:
    sync_api = pytest.importorskip(
        "playwright.sync_api", reason="Playwright is not installed (nox -s console installs it)"
    )
    executable = chromium_path()
    if executable is None:
        pytest.skip("no Chromium on PATH (apt-get install chromium, or set CHROMIUM)")
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=executable, args=["--no-sandbox"])
        try:
            yield browser
        finally:
            browser.close()


class ConsoleErrors:
    """Every error the page reported: console messages of type error, uncaught exceptions,
    failed requests and HTTP answers of 400 or more (Chromium logs those as errors too).

    A request aborted by a navigation the test made (``net::ERR_ABORTED``: a poll in flight
    when ``page.goto`` loads the page again) is the test's doing, not the page's.
    """

    def __init__(self, page: Any) -> None:
        self.seen: list[str] = []
        page.on("console", lambda m: m.type == "error" and self.seen.append(f"console: {m.text}"))
        page.on("pageerror", lambda e: self.seen.append(f"uncaught: {e}"))
        page.on("requestfailed", self._failed)
        page.on("response", lambda r: r.status >= 400 and self.seen.append(f"{r.status}: {r.url}"))

    def _failed(self, request: Any) -> None:
        if request.failure != "net::ERR_ABORTED":
            self.seen.append(f"request failed: {request.url} {request.failure}")


@pytest.fixture
def page(browser: Any) -> Iterator[Any]:
    """A fresh page at laptop size; after the test, it must have reported no error."""
    context = browser.new_context(viewport={"width": 1280, "height": 800})
    page = context.new_page()
    errors = ConsoleErrors(page)
    try:
        yield page
        seen = list(errors.seen)  # before closing: that aborts a poll in flight
    finally:
        context.close()
    assert seen == []
