"""Headless Debian chromium for the viewer's browser test and the clip benchmarks (never a downloaded browser)."""

from __future__ import annotations

import shutil
from pathlib import Path

# Flags that keep headless chromium from stalling on a closed network, and let muted clips autoplay.
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run", "--autoplay-policy=no-user-gesture-required"]


def chromium_path() -> str | None:
    """The system chromium (``apt-get install chromium``), or None."""
    return next((p for p in (shutil.which("chromium"), shutil.which("chromium-browser"), "/usr/bin/chromium")
                 if p and Path(p).is_file()), None)


def launch(playwright):
    """A headless system chromium from a running ``sync_playwright()``."""
    path = chromium_path()
    if path is None:
        raise FileNotFoundError("no chromium binary: apt-get install chromium")
    return playwright.chromium.launch(executable_path=path, args=CHROMIUM_ARGS)
