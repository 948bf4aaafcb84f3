"""telemetry fold: roll-ups and latest values folded in after ingestion

Ingestion only appends readings; a fold (``cityops.telemetry.fold``) brings the 1-minute and
1-hour roll-ups and the latest values up to date. ``telemetry_fold`` records how far it got
(SQLite: the highest ``readings`` rowid folded — existing readings were rolled up as they
were stored, so it starts at the current highest rowid); ``reading_batches`` (SQLite) and
``reading_pending`` (PostgreSQL) hold what a fold needs of readings not yet folded.

Revision ID: 20261130_0009
Revises: 20261130_0008
Create Date: 2026-11-30 06:30:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import cityops.db

revision = "20261130_0009"
down_revision = "20261130_0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "telemetry_fold",
        sa.Column("stream", sa.String(length=32), nullable=False),
        sa.Column("position", sa.BigInteger(), nullable=False),
        sa.Column("folded_at", cityops.db.UTCDateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("stream", name=op.f("pk_telemetry_fold")),
    )
    op.create_table(
        "reading_batches",
        sa.Column("upto", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("received_at", cityops.db.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("upto", name=op.f("pk_reading_batches")),
    )
    op.create_table(
        "reading_pending",
        sa.Column("device_id", sa.Integer(), nullable=False),
        sa.Column("metric", sa.String(length=32), nullable=False),
        sa.Column("ts", sa.BigInteger(), nullable=False),
        sa.Column("value", sa.Float(), nullable=False),
        sa.Column("received_at", cityops.db.UTCDateTime(timezone=True), nullable=False),
    )
    # Everything stored so far was rolled up when it was stored.
    start = "coalesce(max(rowid), 0)" if op.get_bind().dialect.name == "sqlite" else "0"
    op.execute(
        f"INSERT INTO telemetry_fold (stream, position) SELECT 'readings', {start} FROM readings"
    )


def downgrade() -> None:
    op.drop_table("reading_pending")
    op.drop_table("reading_batches")
    op.drop_table("telemetry_fold")
