"""Add provider settings for discovery, quirks and revocation adapters

Revision ID: 0003
Revises: 0002
"""

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table("providers") as batch:
        batch.add_column(sa.Column("issuer", sa.String(length=2000), nullable=True))
        batch.add_column(
            sa.Column("extra_authorization_params", sa.JSON(), nullable=False, server_default=sa.text("'{}'"))
        )
        batch.add_column(sa.Column("scope_separator", sa.String(length=4), nullable=False, server_default=" "))
        batch.add_column(sa.Column("default_token_lifetime", sa.Integer(), nullable=True))
        batch.add_column(sa.Column("refresh_token_rotates", sa.Boolean(), nullable=True))
        batch.add_column(
            sa.Column("revocation_method", sa.String(length=40), nullable=False, server_default="rfc7009")
        )
        batch.add_column(sa.Column("catalog_key", sa.String(length=60), nullable=True))


def downgrade():
    with op.batch_alter_table("providers") as batch:
        for column in (
            "catalog_key",
            "revocation_method",
            "refresh_token_rotates",
            "default_token_lifetime",
            "scope_separator",
            "extra_authorization_params",
            "issuer",
        ):
            batch.drop_column(column)
