"""The Prefect UI as an operator sees it, in headless Chromium driven by Playwright.

Debian's chromium (``make test`` installs it as root) is launched by path, so nothing is
downloaded. Every check *waits* for what it looks for (up to ``timeout_s``): the UI renders its
run list and artifacts after its own API calls, which take longer on a busy machine.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

__all__ = ["chromium", "ui_shows"]

_FLAGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def chromium() -> str:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        path = shutil.which(name)
        if path:
            return path
    pytest.skip("no Chromium (make test installs Debian's chromium as root)")


def ui_shows(
    ui: str,
    *,
    runs: list[str],
    artifacts: list[str],
    screenshot: Path | None = None,
    timeout_s: float = 90.0,
) -> None:
    """Open the runs page and the artifacts page of the UI at ``ui`` and wait until every name
    in ``runs`` and every key in ``artifacts`` is on them (AssertionError naming what is not)."""
    from playwright.sync_api import TimeoutError as PlaywrightTimeout
    from playwright.sync_api import sync_playwright

    ms = int(timeout_s * 1000)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium(), args=_FLAGS)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 1800})
            for url, names in (
                (f"{ui}/runs?hide-subflows=false", runs),
                (f"{ui}/artifacts", artifacts),
            ):
                page.goto(url, wait_until="domcontentloaded", timeout=ms)
                for name in names:
                    try:
                        page.get_by_text(name).first.wait_for(state="attached", timeout=ms)
                    except PlaywrightTimeout:
                        raise AssertionError(
                            f"{name!r} never appeared on {url} within {timeout_s:.0f} s; the page "
                            f"says: {page.inner_text('body')[:600]!r}"
                        ) from None
                if screenshot is not None and names is runs:
                    page.screenshot(path=str(screenshot))
        finally:
            browser.close()
