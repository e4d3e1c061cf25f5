"""Debian's Chromium driven by Playwright for the browser tests (never `playwright install`).

Importing this module skips the importing test module where Chromium or Playwright is missing, except when CI is
set: there they must run (`.ci/run` installs Chromium with apt), so their absence is an error."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

CHROMIUM = shutil.which("chromium") or ("/usr/bin/chromium" if Path("/usr/bin/chromium").exists() else None)
if CHROMIUM is None:
    if os.environ.get("CI"):
        raise RuntimeError("CI is set but Chromium is missing: .ci/run installs it (apt-get install -y chromium)")
    pytest.skip("Chromium is not installed (apt-get install -y chromium); CI runs these tests",
                allow_module_level=True)
if os.environ.get("CI"):
    from playwright import sync_api
else:
    sync_api = pytest.importorskip("playwright.sync_api")


@contextmanager
def chromium() -> Iterator:
    """A headless Chromium browser (Playwright's sync API)."""
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox", "--disable-dev-shm-usage"])
        yield browser
        browser.close()
