"""Add groups and single sign-on identities

Revision ID: 0007
Revises: 0006
"""

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade():
    op.create_table(
        "groups",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.Column("description", sa.Text(), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_groups")),
        sa.UniqueConstraint("name", name=op.f("uq_groups_name")),
    )
    op.create_table(
        "group_members",
        sa.Column("group_id", sa.Integer(), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["group_id"], ["groups.id"], name=op.f("fk_group_members_group_id_groups"), ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.id"], name=op.f("fk_group_members_user_id_users"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("group_id", "user_id", name=op.f("pk_group_members")),
    )
    with op.batch_alter_table("group_members") as batch:
        batch.create_index(batch.f("ix_group_members_user_id"), ["user_id"])
    op.create_table(
        "integration_groups",
        sa.Column("integration_id", sa.Integer(), nullable=False),
        sa.Column("group_id", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["integration_id"],
            ["integrations.id"],
            name=op.f("fk_integration_groups_integration_id_integrations"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["group_id"], ["groups.id"], name=op.f("fk_integration_groups_group_id_groups"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("integration_id", "group_id", name=op.f("pk_integration_groups")),
    )
    with op.batch_alter_table("integration_groups") as batch:
        batch.create_index(batch.f("ix_integration_groups_group_id"), ["group_id"])
    with op.batch_alter_table("users") as batch:
        batch.add_column(sa.Column("sso_issuer", sa.String(length=500), nullable=True))
        batch.add_column(sa.Column("sso_subject", sa.String(length=255), nullable=True))
        batch.create_unique_constraint("uq_users_sso_identity", ["sso_issuer", "sso_subject"])


def downgrade():
    with op.batch_alter_table("users") as batch:
        batch.drop_constraint("uq_users_sso_identity", type_="unique")
        batch.drop_column("sso_subject")
        batch.drop_column("sso_issuer")
    op.drop_table("integration_groups")
    op.drop_table("group_members")
    op.drop_table("groups")
