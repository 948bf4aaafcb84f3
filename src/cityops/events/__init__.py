"""Event center: cases from every channel through the closed loop, with clocks and evaluation."""

from __future__ import annotations

from datetime import timedelta
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from cityops.config import Settings


def configure(settings: Settings) -> None:
    """Apply the event-center settings (called once per process at start-up)."""
    from cityops.events import clocks, intake, lifecycle

    clocks.configure(settings.clock_ladder)
    lifecycle.FEEDBACK_DAYS = settings.feedback_days
    intake.DUPLICATE_RADIUS_M = settings.duplicate_radius_m
    intake.DUPLICATE_WINDOW = timedelta(hours=settings.duplicate_window_h)
    from cityops.notify import service as notify

    notify.configure(
        webhook=bool(settings.notify_webhook_url), email=bool(settings.notify_smtp_host)
    )
