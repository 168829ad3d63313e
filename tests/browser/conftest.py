"""Browser tests: real Chromium from the system packages, driven by Playwright."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

CHROMIUM = Path("/usr/bin/chromium")
OUTPUT_DIR = Path(__file__).resolve().parents[2] / "test-output"
# `make screenshots` points this at docs/screenshots/: the docs' pictures come from an explicit
# command, never from a test run, which leaves the tracked files as they were.
SCREENSHOTS_ENV = "PARLEY_SCREENSHOTS_DIR"


@pytest.fixture
def screenshots_dir(tmp_path: Path) -> Path:
    """Where a test saves the pictures the docs use: a temporary folder, unless
    PARLEY_SCREENSHOTS_DIR names one (`make screenshots`)."""
    chosen = os.environ.get(SCREENSHOTS_ENV)
    folder = Path(chosen) if chosen else tmp_path / "screenshots"
    folder.mkdir(parents=True, exist_ok=True)
    return folder


@pytest.fixture
def chromium() -> Iterator[Any]:
    if not CHROMIUM.exists() and shutil.which("chromium") is None:
        pytest.skip(
            "Chromium is not installed at /usr/bin/chromium (make test installs it "
            "with apt-get install chromium)"
        )
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=str(CHROMIUM if CHROMIUM.exists() else shutil.which("chromium")),
            # No traffic beyond the test server: no updates, sync, first-run pages or QUIC.
            args=[
                "--no-sandbox",
                "--disable-background-networking",
                "--disable-gpu",
                "--disable-component-update",
                "--disable-sync",
                "--no-first-run",
                "--disable-quic",
            ],
        )
        try:
            yield browser
        finally:
            browser.close()


@pytest.fixture
def screenshot_on_failure(request: pytest.FixtureRequest) -> Iterator[list[Any]]:
    """Tests append their page; a failing test leaves a full-page screenshot in test-output/."""
    pages: list[Any] = []
    yield pages
    report = getattr(request.node, "rep_call", None)
    if report is not None and report.failed:
        OUTPUT_DIR.mkdir(exist_ok=True)
        for n, page in enumerate(pages):
            try:
                page.screenshot(
                    path=str(OUTPUT_DIR / f"{request.node.name}-{n}.png"), full_page=True
                )
            except Exception:  # noqa: BLE001, S110 - a screenshot must not hide the failure
                pass


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[Any]) -> Iterator[None]:
    outcome = yield
    report = outcome.get_result()
    setattr(item, f"rep_{report.when}", report)


def watch(page: Any, problems: list[str], *, responses: bool = True) -> None:
    """Collect the page's script errors, console errors and (`responses`) failed responses into
    `problems` (a test ends with `assert problems == []`)."""
    page.on("console", lambda m: problems.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: problems.append(str(e)))
    if responses:
        page.on(
            "response",
            lambda r: problems.append(f"{r.status} {r.url}") if r.status >= 400 else None,
        )


class Browsing:
    """A test's browser pages, each in a context of its own and kept for a screenshot should
    the test fail; what the watched ones go through collects in `problems`."""

    def __init__(self, chromium: Any, kept: list[Any]) -> None:
        self.chromium = chromium
        self.kept = kept
        self.problems: list[str] = []

    def page(
        self,
        viewport: tuple[int, int] | None = (1280, 900),
        *,
        watched: bool = True,
        responses: bool = True,
    ) -> Any:
        """A new page (`viewport`: width, height; None: Playwright's default). Watched, its
        script and console errors and (`responses`) failed responses are problems."""
        size = {"width": viewport[0], "height": viewport[1]} if viewport else None
        page = self.chromium.new_context(viewport=size).new_page()
        self.kept.append(page)
        if watched:
            watch(page, self.problems, responses=responses)
        return page


@pytest.fixture
def browse(chromium: Any, screenshot_on_failure: list[Any]) -> Browsing:
    """Pages for the test (see Browsing); Playwright's expectations wait up to 15 s (a real
    server, a real socket)."""
    from playwright.sync_api import expect

    expect.set_options(timeout=15_000)
    return Browsing(chromium, screenshot_on_failure)


def admin_sign_in(page: Any, http: str, password: str, *, username: str, next_path: str) -> None:
    """Sign in through the admin's login form."""
    page.goto(f"{http}/admin/login/?next={next_path}")
    page.locator("#id_username").fill(username)
    page.locator("#id_password").fill(password)
    page.get_by_role("button", name="Log in").click()
