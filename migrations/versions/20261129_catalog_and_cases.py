"""catalog and cases

Revision ID: 20261129_0003
Revises: 20261129_0002
Create Date: 2026-11-29 20:21:04.443806
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import cityops.db

revision = "20261129_0003"
down_revision = "20261129_0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "categories",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("code", sa.String(length=8), nullable=False),
        sa.Column("name", sa.String(length=50), nullable=False),
        sa.Column("parent_id", sa.Integer(), nullable=True),
        sa.Column("kind", sa.String(length=10), nullable=False),
        sa.Column("owner_unit_id", sa.Integer(), nullable=True),
        sa.Column("owner_short_name", sa.String(length=40), nullable=True),
        sa.Column("clock", sa.String(length=10), nullable=False),
        sa.Column("limit_urgent_h", sa.Float(), nullable=False),
        sa.Column("limit_normal_h", sa.Float(), nullable=False),
        sa.Column("keywords", sa.JSON(), nullable=False),
        sa.Column("active", sa.Boolean(), nullable=False),
        sa.Column("updated_at", cityops.db.UTCDateTime(timezone=True), nullable=False),
        sa.CheckConstraint("clock IN ('working','natural')", name=op.f("ck_categories_clock")),
        sa.CheckConstraint("kind IN ('event','component')", name=op.f("ck_categories_kind")),
        sa.CheckConstraint(
            "limit_urgent_h > 0 AND limit_normal_h >= limit_urgent_h",
            name=op.f("ck_categories_limits"),
        ),
        sa.ForeignKeyConstraint(
            ["owner_unit_id"], ["units.id"], name=op.f("fk_categories_owner_unit_id_units")
        ),
        sa.ForeignKeyConstraint(
            ["parent_id"], ["categories.id"], name=op.f("fk_categories_parent_id_categories")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_categories")),
        sa.UniqueConstraint("code", name=op.f("uq_categories_code")),
    )
    with op.batch_alter_table("categories", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_categories_parent_id"), ["parent_id"], unique=False)

    op.create_table(
        "routing_rules",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("category_code", sa.String(length=8), nullable=False),
        sa.Column("region_code", sa.String(length=15), nullable=False),
        sa.Column("level", sa.String(length=10), nullable=False),
        sa.Column("unit_id", sa.Integer(), nullable=False),
        sa.Column("note", sa.String(length=200), nullable=False),
        sa.ForeignKeyConstraint(
            ["unit_id"], ["units.id"], name=op.f("fk_routing_rules_unit_id_units")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_routing_rules")),
    )
    op.create_table(
        "cases",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("code", sa.String(length=20), nullable=True),
        sa.Column("source", sa.String(length=20), nullable=False),
        sa.Column("category_id", sa.Integer(), nullable=True),
        sa.Column("description", sa.Text(), nullable=False),
        sa.Column("address", sa.String(length=200), nullable=False),
        sa.Column("lon", sa.Float(), nullable=True),
        sa.Column("lat", sa.Float(), nullable=True),
        sa.Column("region_code", sa.String(length=15), nullable=False),
        sa.Column("urgency", sa.String(length=10), nullable=False),
        sa.Column("state", sa.String(length=12), nullable=False),
        sa.Column("resume_state", sa.String(length=12), nullable=True),
        sa.Column("level", sa.String(length=10), nullable=False),
        sa.Column("current_unit_id", sa.Integer(), nullable=True),
        sa.Column("reporter_name", sa.String(length=50), nullable=True),
        sa.Column("reporter_phone", sa.String(length=20), nullable=True),
        sa.Column("reporter_person_id", sa.Integer(), nullable=True),
        sa.Column("master_id", sa.Integer(), nullable=True),
        sa.Column("idempotency_key", sa.String(length=64), nullable=True),
        sa.Column("clock", sa.String(length=10), nullable=False),
        sa.Column("clock_started_at", cityops.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("limit_hours", sa.Float(), nullable=True),
        sa.Column("paused_hours", sa.Float(), nullable=False),
        sa.Column("paused_at", cityops.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("deadline_at", cityops.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("clock_step", sa.Integer(), nullable=False),
        sa.Column("next_clock_at", cityops.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("rework_count", sa.Integer(), nullable=False),
        sa.Column("units_passed", sa.Integer(), nullable=False),
        sa.Column("is_problem", sa.Boolean(), nullable=False),
        sa.Column("overdue", sa.Boolean(), nullable=False),
        sa.Column("satisfied", sa.Boolean(), nullable=True),
        sa.Column("created_at", cityops.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("updated_at", cityops.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("closed_at", cityops.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.CheckConstraint("level IN ('village','town','district')", name=op.f("ck_cases_level")),
        sa.CheckConstraint(
            "state IN ('reported','registered','dispatched','handling','handled','closed',"
            "'rejected','merged','parked','voided')",
            name=op.f("ck_cases_state"),
        ),
        sa.CheckConstraint("urgency IN ('urgent','normal')", name=op.f("ck_cases_urgency")),
        sa.ForeignKeyConstraint(
            ["category_id"], ["categories.id"], name=op.f("fk_cases_category_id_categories")
        ),
        sa.ForeignKeyConstraint(
            ["current_unit_id"], ["units.id"], name=op.f("fk_cases_current_unit_id_units")
        ),
        sa.ForeignKeyConstraint(["master_id"], ["cases.id"], name=op.f("fk_cases_master_id_cases")),
        sa.ForeignKeyConstraint(
            ["reporter_person_id"], ["people.id"], name=op.f("fk_cases_reporter_person_id_people")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_cases")),
        sa.UniqueConstraint("code", name=op.f("uq_cases_code")),
        sa.UniqueConstraint("idempotency_key", name=op.f("uq_cases_idempotency_key")),
    )
    with op.batch_alter_table("cases", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_cases_category_id"), ["category_id"], unique=False)
        batch_op.create_index("ix_cases_created", ["created_at"], unique=False)
        batch_op.create_index(batch_op.f("ix_cases_master_id"), ["master_id"], unique=False)
        batch_op.create_index("ix_cases_next_clock", ["next_clock_at"], unique=False)
        batch_op.create_index(batch_op.f("ix_cases_region_code"), ["region_code"], unique=False)
        batch_op.create_index(
            batch_op.f("ix_cases_reporter_person_id"), ["reporter_person_id"], unique=False
        )
        batch_op.create_index("ix_cases_state_region", ["state", "region_code"], unique=False)
        batch_op.create_index("ix_cases_unit_state", ["current_unit_id", "state"], unique=False)

    op.create_table(
        "attachments",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("sha256", sa.String(length=64), nullable=False),
        sa.Column("content_type", sa.String(length=50), nullable=False),
        sa.Column("size", sa.Integer(), nullable=False),
        sa.Column("filename", sa.String(length=200), nullable=False),
        sa.Column("case_id", sa.Integer(), nullable=True),
        sa.Column("uploaded_by", sa.String(length=100), nullable=False),
        sa.Column("uploaded_at", cityops.db.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["case_id"], ["cases.id"], name=op.f("fk_attachments_case_id_cases")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_attachments")),
    )
    with op.batch_alter_table("attachments", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_attachments_case_id"), ["case_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_attachments_sha256"), ["sha256"], unique=False)

    op.create_table(
        "case_assignments",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("case_id", sa.Integer(), nullable=False),
        sa.Column("unit_id", sa.Integer(), nullable=False),
        sa.Column("role", sa.String(length=10), nullable=False),
        sa.Column("active", sa.Boolean(), nullable=False),
        sa.Column("assigned_at", cityops.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("accepted_at", cityops.db.UTCDateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["case_id"], ["cases.id"], name=op.f("fk_case_assignments_case_id_cases")
        ),
        sa.ForeignKeyConstraint(
            ["unit_id"], ["units.id"], name=op.f("fk_case_assignments_unit_id_units")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_case_assignments")),
    )
    with op.batch_alter_table("case_assignments", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_case_assignments_case_id"), ["case_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_case_assignments_unit_id"), ["unit_id"], unique=False)

    op.create_table(
        "case_events",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("case_id", sa.Integer(), nullable=False),
        sa.Column("at", cityops.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("action", sa.String(length=20), nullable=False),
        sa.Column("actor_kind", sa.String(length=20), nullable=False),
        sa.Column("actor_id", sa.String(length=64), nullable=False),
        sa.Column("actor_name", sa.String(length=100), nullable=False),
        sa.Column("actor_unit_id", sa.Integer(), nullable=True),
        sa.Column("unit_id", sa.Integer(), nullable=True),
        sa.Column("from_state", sa.String(length=12), nullable=True),
        sa.Column("to_state", sa.String(length=12), nullable=True),
        sa.Column("note", sa.Text(), nullable=False),
        sa.Column("data", sa.JSON(), nullable=False),
        sa.Column("positive", sa.Boolean(), nullable=True),
        sa.ForeignKeyConstraint(
            ["actor_unit_id"], ["units.id"], name=op.f("fk_case_events_actor_unit_id_units")
        ),
        sa.ForeignKeyConstraint(
            ["case_id"], ["cases.id"], name=op.f("fk_case_events_case_id_cases")
        ),
        sa.ForeignKeyConstraint(
            ["unit_id"], ["units.id"], name=op.f("fk_case_events_unit_id_units")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_case_events")),
    )
    with op.batch_alter_table("case_events", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_case_events_action"), ["action"], unique=False)
        batch_op.create_index(
            batch_op.f("ix_case_events_actor_unit_id"), ["actor_unit_id"], unique=False
        )
        batch_op.create_index(
            "ix_case_events_period", ["at", "unit_id", "action", "positive"], unique=False
        )
        batch_op.create_index("ix_case_events_case", ["case_id", "id"], unique=False)
        batch_op.create_index(batch_op.f("ix_case_events_unit_id"), ["unit_id"], unique=False)

    op.create_table(
        "case_extensions",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("case_id", sa.Integer(), nullable=False),
        sa.Column("hours", sa.Float(), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("state", sa.String(length=10), nullable=False),
        sa.Column("requested_by", sa.String(length=100), nullable=False),
        sa.Column("requested_at", cityops.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("decided_by", sa.String(length=100), nullable=True),
        sa.Column("decided_at", cityops.db.UTCDateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["case_id"], ["cases.id"], name=op.f("fk_case_extensions_case_id_cases")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_case_extensions")),
    )
    with op.batch_alter_table("case_extensions", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_case_extensions_case_id"), ["case_id"], unique=False)

    op.create_table(
        "case_followers",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("case_id", sa.Integer(), nullable=False),
        sa.Column("person_id", sa.Integer(), nullable=True),
        sa.Column("name", sa.String(length=50), nullable=True),
        sa.Column("phone", sa.String(length=20), nullable=True),
        sa.Column("since", cityops.db.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["case_id"], ["cases.id"], name=op.f("fk_case_followers_case_id_cases")
        ),
        sa.ForeignKeyConstraint(
            ["person_id"], ["people.id"], name=op.f("fk_case_followers_person_id_people")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_case_followers")),
    )
    with op.batch_alter_table("case_followers", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_case_followers_case_id"), ["case_id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("case_followers", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_case_followers_case_id"))

    op.drop_table("case_followers")
    with op.batch_alter_table("case_extensions", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_case_extensions_case_id"))

    op.drop_table("case_extensions")
    with op.batch_alter_table("case_events", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_case_events_unit_id"))
        batch_op.drop_index("ix_case_events_case")
        batch_op.drop_index("ix_case_events_period")
        batch_op.drop_index(batch_op.f("ix_case_events_actor_unit_id"))
        batch_op.drop_index(batch_op.f("ix_case_events_action"))

    op.drop_table("case_events")
    with op.batch_alter_table("case_assignments", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_case_assignments_unit_id"))
        batch_op.drop_index(batch_op.f("ix_case_assignments_case_id"))

    op.drop_table("case_assignments")
    with op.batch_alter_table("attachments", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_attachments_sha256"))
        batch_op.drop_index(batch_op.f("ix_attachments_case_id"))

    op.drop_table("attachments")
    with op.batch_alter_table("cases", schema=None) as batch_op:
        batch_op.drop_index("ix_cases_unit_state")
        batch_op.drop_index("ix_cases_state_region")
        batch_op.drop_index(batch_op.f("ix_cases_reporter_person_id"))
        batch_op.drop_index(batch_op.f("ix_cases_region_code"))
        batch_op.drop_index("ix_cases_next_clock")
        batch_op.drop_index(batch_op.f("ix_cases_master_id"))
        batch_op.drop_index("ix_cases_created")
        batch_op.drop_index(batch_op.f("ix_cases_category_id"))

    op.drop_table("cases")
    op.drop_table("routing_rules")
    with op.batch_alter_table("categories", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_categories_parent_id"))

    op.drop_table("categories")
