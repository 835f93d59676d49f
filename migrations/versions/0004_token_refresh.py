"""Add token refresh state

Revision ID: 0004
Revises: 0003
"""

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade():
    # The status column is a non-native enum without a CHECK constraint, so the new
    # value needs_reconnect needs no change here.
    with op.batch_alter_table("credentials") as batch:
        batch.add_column(sa.Column("refreshed_at", sa.DateTime(), nullable=True))
        batch.add_column(sa.Column("refresh_attempts", sa.Integer(), nullable=False, server_default="0"))
        batch.add_column(sa.Column("next_refresh_attempt_at", sa.DateTime(), nullable=True))
        batch.add_column(sa.Column("refresh_error", sa.String(length=1000), nullable=True))


def downgrade():
    # Earlier versions cannot load the needs_reconnect value; as active, a credential
    # fails its next refresh again and shows the error then.
    op.execute("UPDATE credentials SET status = 'active' WHERE status = 'needs_reconnect'")
    with op.batch_alter_table("credentials") as batch:
        for column in ("refresh_error", "next_refresh_attempt_at", "refresh_attempts", "refreshed_at"):
            batch.drop_column(column)
