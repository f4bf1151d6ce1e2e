"""The first schema: datasets, samples, labels (history), snapshots and their items.

Revision ID: 0001
Revises:
Create Date: 2026-12-04
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "datasets",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("name", sa.String(128), nullable=False, unique=True),
        sa.Column("classes", sa.JSON(), nullable=False),
        sa.Column("val_fraction", sa.Float(), nullable=False),
        sa.Column("golden_frozen", sa.Boolean(), nullable=False),
        sa.Column("created_at", TS, nullable=False),
    )
    op.create_table(
        "samples",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column(
            "dataset_id",
            sa.Integer(),
            sa.ForeignKey("datasets.id", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column("sha256", sa.String(64), nullable=False),
        sa.Column("width", sa.Integer(), nullable=False),
        sa.Column("height", sa.Integer(), nullable=False),
        sa.Column("size_bytes", sa.Integer(), nullable=False),
        sa.Column("media_type", sa.String(32), nullable=False),
        sa.Column("original_name", sa.String(512), nullable=True),
        sa.Column("source", sa.String(16), nullable=False),
        sa.Column("line", sa.String(128), nullable=True),
        sa.Column("camera", sa.String(128), nullable=True),
        sa.Column("frame_id", sa.String(128), nullable=True),
        sa.Column("taken_at", TS, nullable=False),
        sa.Column("model_ref", sa.String(256), nullable=True),
        sa.Column("prediction", sa.JSON(), nullable=True),
        sa.Column("record", sa.JSON(), nullable=True),
        sa.Column("sampler", sa.String(64), nullable=True),
        sa.Column("capture_class", sa.String(128), nullable=True),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("split", sa.String(8), nullable=False),
        sa.Column("golden", sa.Boolean(), nullable=False),
        sa.Column("label_version", sa.Integer(), nullable=False),
        sa.Column("pixels_deleted_at", TS, nullable=True),
        sa.Column("created_at", TS, nullable=False),
        sa.UniqueConstraint("dataset_id", "sha256", name="uq_samples_dataset_sha256"),
    )
    op.create_index("ix_samples_dataset_state", "samples", ["dataset_id", "state"])
    op.create_index("ix_samples_sha256", "samples", ["sha256"])
    op.create_table(
        "labels",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column(
            "sample_id",
            sa.Integer(),
            sa.ForeignKey("samples.id", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("boxes", sa.JSON(), nullable=False),
        sa.Column("author", sa.String(128), nullable=False),
        sa.Column("origin", sa.String(24), nullable=False),
        sa.Column("external_ref", sa.String(128), nullable=True),
        sa.Column("created_at", TS, nullable=False),
        sa.UniqueConstraint("sample_id", "version", name="uq_labels_sample_version"),
    )
    op.create_index("ix_labels_external_ref", "labels", ["external_ref"])
    op.create_table(
        "snapshots",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column(
            "dataset_id",
            sa.Integer(),
            sa.ForeignKey("datasets.id", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column("fingerprint", sa.String(64), nullable=False),
        sa.Column("train_fingerprint", sa.String(64), nullable=False),
        sa.Column("classes", sa.JSON(), nullable=False),
        sa.Column("counts", sa.JSON(), nullable=False),
        sa.Column("created_at", TS, nullable=False),
        sa.UniqueConstraint("dataset_id", "fingerprint", name="uq_snapshots_dataset_fingerprint"),
    )
    op.create_table(
        "snapshot_items",
        sa.Column(
            "snapshot_id",
            sa.Integer(),
            sa.ForeignKey("snapshots.id", ondelete="CASCADE"),
            primary_key=True,
        ),
        sa.Column("sample_id", sa.Integer(), sa.ForeignKey("samples.id"), primary_key=True),
        sa.Column("label_id", sa.Integer(), sa.ForeignKey("labels.id"), nullable=False),
        sa.Column("role", sa.String(8), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("snapshot_items")
    op.drop_table("snapshots")
    op.drop_index("ix_labels_external_ref", "labels")
    op.drop_table("labels")
    op.drop_index("ix_samples_sha256", "samples")
    op.drop_index("ix_samples_dataset_state", "samples")
    op.drop_table("samples")
    op.drop_table("datasets")
