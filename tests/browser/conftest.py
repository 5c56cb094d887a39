"""Headless Chromium for the browser tests: Debian's ``/usr/bin/chromium`` through Playwright.

Playwright does not download a browser here: it drives the system's Chromium, which
``.ci/run`` installs (``apt-get install chromium``); ``ALPHANODE_CHROMIUM`` names another.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, expect, sync_playwright

CHROMIUM = Path(os.environ.get("ALPHANODE_CHROMIUM", "/usr/bin/chromium"))
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",  # the tests run as root
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
]
TIMEOUT_MS = 10_000
# Starting Chromium is the machine's business, not GraphiQL's: on a busy 2-core machine (a CI
# run, with PostgreSQL and the rest of the suite) it once took over 10 s.
LAUNCH_TIMEOUT_MS = 60_000
expect.set_options(timeout=TIMEOUT_MS)


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    if not CHROMIUM.exists():
        pytest.fail(
            f"no Chromium at {CHROMIUM}: install Debian's with `apt-get install -y --no-install-recommends chromium` "
            "(.ci/run does), or name one with ALPHANODE_CHROMIUM"
        )
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, timeout=LAUNCH_TIMEOUT_MS
        )
        try:
            yield browser
        finally:
            browser.close()
