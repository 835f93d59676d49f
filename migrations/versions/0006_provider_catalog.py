"""Add provider catalog data

Revision ID: 0006
Revises: 0005
"""

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table("providers") as batch:
        batch.add_column(
            sa.Column("issuer_parameter_required", sa.Boolean(), nullable=False, server_default=sa.false())
        )


def downgrade():
    with op.batch_alter_table("providers") as batch:
        batch.drop_column("issuer_parameter_required")
