"""Record which replica ran a job and which attempt wrote each segment.

Several replicas share one database: ``jobs.replica`` is who claimed the latest attempt (kept
after completion), ``job_segments.attempt`` / ``replica`` who committed each segment, so a
takeover can be checked in the data (no segment from an attempt after a newer one began).

Revision ID: 0002
Revises: 0001
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("jobs") as batch:
        batch.add_column(sa.Column("replica", sa.String(128)))
    with op.batch_alter_table("job_segments") as batch:
        batch.add_column(sa.Column("attempt", sa.Integer))
        batch.add_column(sa.Column("replica", sa.String(128)))


def downgrade() -> None:
    with op.batch_alter_table("job_segments") as batch:
        batch.drop_column("replica")
        batch.drop_column("attempt")
    with op.batch_alter_table("jobs") as batch:
        batch.drop_column("replica")
