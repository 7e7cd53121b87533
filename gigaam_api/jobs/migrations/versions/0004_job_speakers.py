"""Speaker labels of jobs: per segment, the job's speakers and their names, the state to resume.

``job_segments.speaker`` holds a segment's speaker once the job is labelled (at completion);
``jobs.speakers`` the labels in order of first appearance, ``jobs.speaker_names`` the names a
user gave them (renaming changes no segment: every format applies the names); and
``jobs.speaker_state`` the diarization so far, committed with each chunk, so a job stopped
mid-way resumes with the same labels.

Revision ID: 0004
Revises: 0003
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("jobs") as batch:
        batch.add_column(sa.Column("speakers", sa.JSON))
        batch.add_column(sa.Column("speaker_names", sa.JSON))
        batch.add_column(sa.Column("speaker_state", sa.LargeBinary))
    with op.batch_alter_table("job_segments") as batch:
        batch.add_column(sa.Column("speaker", sa.String(128)))


def downgrade() -> None:
    with op.batch_alter_table("job_segments") as batch:
        batch.drop_column("speaker")
    with op.batch_alter_table("jobs") as batch:
        batch.drop_column("speaker_state")
        batch.drop_column("speaker_names")
        batch.drop_column("speakers")
