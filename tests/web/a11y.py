"""Basic accessibility, checked in the page as a person meets it: every input has a label, and
text stands out from what is behind it (WCAG AA contrast: 4.5:1, or 3:1 for large text)."""

from __future__ import annotations

from pathlib import Path

from playwright.sync_api import Page

PROBE = "\n".join(
    line
    for line in (Path(__file__).parent / "a11y_probe.js").read_text(encoding="utf-8").splitlines()
    if not line.startswith("//")
)


def check(page: Page) -> None:
    found = page.evaluate(PROBE)
    assert found["unlabelled"] == [], found["unlabelled"]
    assert found["poor"] == [], found["poor"]
