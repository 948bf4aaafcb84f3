"""cockpit daily roll-up

The cockpit's daily roll-up of cases (``cityops.cockpit.rollup``), filled from the cases and
their timeline as they are; the cases' state-and-region index widened to cover the cockpit's
open-case figures and its newest open cases. The backfill is written out here, not imported,
so this revision keeps doing what it did when the roll-up changes later; ``cityops cockpit
rebuild`` recounts with the code of the day.

Revision ID: 20261130_0008
Revises: 20261130_0007
Create Date: 2026-11-30 05:38:57.349458
"""

from __future__ import annotations

from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import sqlalchemy as sa
from alembic import op

revision = "20261130_0008"
down_revision = "20261130_0007"
branch_labels = None
depends_on = None

ZONE = "Asia/Shanghai"  # the days of the roll-up: the district's (working calendar's) zone
LEVELS = (6, 9, 12, 15)  # district, town, village, grid code lengths
SQLITE_DAY = "cockpit_0008_local_day"


def upgrade() -> None:
    op.create_table(
        "cockpit_daily_closures",
        sa.Column("region_code", sa.String(length=15), nullable=False),
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("dispatched", sa.Integer(), nullable=False),
        sa.Column("closed", sa.Integer(), nullable=False),
        sa.Column("closed_on_time", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("region_code", "day", name=op.f("pk_cockpit_daily_closures")),
    )
    op.create_table(
        "cockpit_daily_intake",
        sa.Column("region_code", sa.String(length=15), nullable=False),
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("source", sa.String(length=20), nullable=False),
        sa.Column("category_id", sa.Integer(), nullable=False),
        sa.Column("cases", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint(
            "region_code", "day", "source", "category_id", name=op.f("pk_cockpit_daily_intake")
        ),
    )
    backfill()
    # Wider: covers the cockpit's open cases per region and its newest open cases.
    op.drop_index("ix_cases_state_region", table_name="cases")
    op.create_index(
        "ix_cases_state_region",
        "cases",
        ["state", "region_code", "created_at", "id", "overdue", "deadline_at"],
    )


def downgrade() -> None:
    op.drop_index("ix_cases_state_region", table_name="cases")
    op.create_index("ix_cases_state_region", "cases", ["state", "region_code"])
    op.drop_table("cockpit_daily_intake")
    op.drop_table("cockpit_daily_closures")


def backfill() -> None:
    bind = op.get_bind()
    if bind.dialect.name == "postgresql":
        day = f"CAST(timezone('{ZONE}', {{}}) AS DATE)"
    else:
        raw = bind.connection.driver_connection
        assert raw is not None
        raw.create_function(SQLITE_DAY, 1, _sqlite_day, deterministic=True)
        day = f"{SQLITE_DAY}({{}})"
    intake = " UNION ALL ".join(
        f"SELECT substr(code, 1, {n}), day, source, category_id, sum(n) FROM by_place "
        f"WHERE length(code) >= {n} GROUP BY 1, 2, 3, 4"
        for n in LEVELS
    )
    op.execute(
        "INSERT INTO cockpit_daily_intake (region_code, day, source, category_id, cases) "
        "WITH by_place AS ("
        f" SELECT region_code AS code, {day.format('created_at')} AS day, source,"
        " coalesce(category_id, 0) AS category_id, count(*) AS n"
        " FROM cases GROUP BY 1, 2, 3, 4"
        f") {intake}"
    )
    sums = "sum(dispatched), sum(closed), sum(on_time)"
    closures = " UNION ALL ".join(
        [f"SELECT '', day, {sums} FROM by_event GROUP BY 2"]
        + [
            f"SELECT substr(code, 1, {n}), day, {sums} FROM by_event "
            f"WHERE length(code) >= {n} GROUP BY 1, 2"
            for n in LEVELS
        ]
    )
    op.execute(
        "INSERT INTO cockpit_daily_closures "
        "(region_code, day, dispatched, closed, closed_on_time) "
        "WITH by_event AS ("
        f" SELECT c.region_code AS code, {day.format('e.at')} AS day,"
        " sum(CASE WHEN e.action IN ('dispatch', 'self_handle') THEN 1 ELSE 0 END) AS dispatched,"
        " sum(CASE WHEN e.action = 'verify_ok' THEN 1 ELSE 0 END) AS closed,"
        " sum(CASE WHEN e.action = 'verify_ok' AND e.positive THEN 1 ELSE 0 END) AS on_time"
        " FROM case_events e JOIN cases c ON c.id = e.case_id"
        " WHERE e.action IN ('dispatch', 'self_handle', 'verify_ok')"
        " GROUP BY 1, 2"
        f") {closures}"
    )


def _sqlite_day(stored: str | None) -> str | None:
    """The local day of a timestamp as SQLite holds it (naive UTC text)."""
    if stored is None:
        return None
    moment = datetime.fromisoformat(stored).replace(tzinfo=UTC)
    return moment.astimezone(ZoneInfo(ZONE)).date().isoformat()
