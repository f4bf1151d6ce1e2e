"""The verdict audit trail (service/audit/schema.py): one row per answered frame.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-06
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "audit_rows",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("frame_id", sa.String(128), nullable=False),
        sa.Column("time", sa.DateTime(), nullable=False),
        sa.Column("edge", sa.String(16), nullable=True),
        sa.Column("line", sa.String(128), nullable=True),
        sa.Column("camera", sa.String(128), nullable=True),
        sa.Column("image_sha256", sa.String(64), nullable=True),
        sa.Column("model_name", sa.String(128), nullable=False),
        sa.Column("model_version", sa.Integer(), nullable=False),
        sa.Column("thresholds", sa.JSON(), nullable=False),
        sa.Column("verdict", sa.String(8), nullable=False),
        sa.Column("counts", sa.JSON(), nullable=False),
        sa.Column("max_score", sa.Float(), nullable=True),
        sa.UniqueConstraint("frame_id", name="uq_audit_rows_frame_id"),
    )
    op.create_index("ix_audit_time", "audit_rows", ["time"])
    op.create_index("ix_audit_line_time", "audit_rows", ["line", "time"])
    op.create_index("ix_audit_model_time", "audit_rows", ["model_name", "model_version", "time"])


def downgrade() -> None:
    op.drop_table("audit_rows")
