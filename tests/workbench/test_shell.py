"""What every workbench page shows the same way: deadlines as time left or late (and nothing once
a case has stopped), our bilingual errors in the reader's language, and forms checked by the
API's own schema with the faulty field named."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from cityops.errors import InvalidInput
from cityops.events.schemas import ActionIn
from cityops.workbench.shell import Clock, localized, validated

NOW = datetime(2026, 7, 1, 4, 0, tzinfo=UTC)


def test_deadlines_read_as_time_left_or_late() -> None:
    zh, en = Clock("Asia/Shanghai", "zh", NOW), Clock("Asia/Shanghai", "en", NOW)
    assert zh.left(NOW + timedelta(days=2, hours=3)) == ("剩 2天3小时", "ok")
    assert zh.left(NOW + timedelta(hours=3, minutes=5)) == ("剩 3小时5分", "soon")
    assert en.left(NOW - timedelta(minutes=42)) == ("42 min late", "late")
    assert zh.left(NOW - timedelta(hours=1), "closed") == ("–", "none")
    assert zh.left(None) == ("–", "none")
    assert zh.when(NOW, with_year=True) == "2026-07-01 12:00"  # Beijing time


def test_errors_in_the_readers_language() -> None:
    message = "请选择单位 / choose a unit"
    assert localized(message, "zh") == "请选择单位"
    assert localized(message, "en") == "choose a unit"
    assert localized("没有斜杠", "en") == "没有斜杠"


def test_forms_are_checked_by_the_api_schema() -> None:
    body = validated(ActionIn, {"hours": "24", "assist_units": ["DEPT-08"], "approve": "true"})
    assert body.hours == 24.0 and body.approve is True and body.assist_units == ["DEPT-08"]
    with pytest.raises(InvalidInput) as caught:
        validated(ActionIn, {"hours": "一天"})
    assert caught.value.field == "hours"
    with pytest.raises(InvalidInput) as caught:
        validated(ActionIn, {"hours": "9999"})
    assert caught.value.field == "hours"
