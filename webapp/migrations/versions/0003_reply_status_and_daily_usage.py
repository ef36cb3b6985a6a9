"""Record how each reply was made (status, latency, cache, fallback); count daily token usage."""

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"


def upgrade() -> None:
    # Constant defaults: PostgreSQL adds the columns without rewriting the table, and every
    # existing message is a complete one.
    op.add_column(
        "messages",
        sa.Column(
            "status", sa.String(length=16), server_default=sa.text("'complete'"), nullable=False
        ),
    )
    op.add_column("messages", sa.Column("latency_ms", sa.Integer(), nullable=True))
    op.add_column(
        "messages",
        sa.Column("cached", sa.Boolean(), server_default=sa.false(), nullable=False),
    )
    op.add_column(
        "messages",
        sa.Column("fallback", sa.Boolean(), server_default=sa.false(), nullable=False),
    )
    op.create_check_constraint(
        op.f("ck_messages_status"),
        "messages",
        "status IN ('streaming', 'complete', 'stopped', 'failed')",
    )
    op.create_check_constraint(
        op.f("ck_messages_latency_non_negative"), "messages", "latency_ms >= 0"
    )
    op.create_table(
        "daily_usage",
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("tokens_in", sa.BigInteger(), server_default=sa.text("0"), nullable=False),
        sa.Column("tokens_out", sa.BigInteger(), server_default=sa.text("0"), nullable=False),
        sa.Column("replies", sa.Integer(), server_default=sa.text("0"), nullable=False),
        sa.CheckConstraint(
            "tokens_in >= 0 AND tokens_out >= 0 AND replies >= 0",
            name=op.f("ck_daily_usage_non_negative"),
        ),
        sa.ForeignKeyConstraint(
            ["user_id"],
            ["users.id"],
            name=op.f("fk_daily_usage_user_id_users"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("user_id", "day", name=op.f("pk_daily_usage")),
    )


def downgrade() -> None:
    op.drop_table("daily_usage")
    op.drop_constraint(op.f("ck_messages_latency_non_negative"), "messages", type_="check")
    op.drop_constraint(op.f("ck_messages_status"), "messages", type_="check")
    op.drop_column("messages", "fallback")
    op.drop_column("messages", "cached")
    op.drop_column("messages", "latency_ms")
    op.drop_column("messages", "status")
