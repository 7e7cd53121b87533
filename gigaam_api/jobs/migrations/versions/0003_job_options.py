"""Store the options a job was submitted with.

``jobs.options`` (JSON) holds what the client asked for that changes how the job runs (its
``language`` today; speakers and keywords later), so every attempt — a resume after a restart or
on another replica — runs with the same options. ``NULL`` (jobs submitted before this revision)
means the defaults.

Revision ID: 0003
Revises: 0002
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("jobs") as batch:
        batch.add_column(sa.Column("options", sa.JSON))


def downgrade() -> None:
    with op.batch_alter_table("jobs") as batch:
        batch.drop_column("options")
