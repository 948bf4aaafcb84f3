"""Masking of personal data for people who do not need to see it in full."""

from __future__ import annotations


def mask_name(name: str) -> str:
    """张三 → 张*, 欧阳娜娜 → 欧阳**; one character stays one character."""
    name = name.strip()
    if len(name) <= 1:
        return name
    keep = 2 if len(name) >= 4 else 1
    return name[:keep] + "*" * (len(name) - keep)


def mask_mobile(mobile: str | None) -> str | None:
    """13812341234 → 138****1234."""
    if not mobile:
        return mobile
    digits = mobile.strip()
    if len(digits) < 7:
        return "*" * len(digits)
    return digits[:3] + "*" * (len(digits) - 7) + digits[-4:]
