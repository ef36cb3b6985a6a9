"""Add the model catalogue (providers, their models), personal API keys, and model choice.

Conversations gain the model chosen for them, a system prompt and a temperature; users gain a
default model and a daily token quota of their own. Existing rows keep null in every new
column: their conversations answer with the default model exactly as before, and the models of
the deployment's settings (LLM_MODEL, LLM_FALLBACK_MODEL, OPENAI_*) stay in the catalogue as
its managed entries (``webapp.catalogue``), so nothing needs copying.
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0007"
down_revision = "0006"


def _timestamps() -> list[sa.Column]:
    return [
        sa.Column(name, sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False)
        for name in ("created_at", "updated_at")
    ]


def upgrade() -> None:
    op.create_table(
        "providers",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("kind", sa.String(length=16), server_default=sa.text("'openai'"), nullable=False),
        sa.Column("base_url", sa.String(length=2048), nullable=False),
        sa.Column("api_key_encrypted", sa.Text(), nullable=True),
        sa.Column("api_key_last4", sa.String(length=4), nullable=True),
        sa.Column("timeout_seconds", sa.Float(), server_default=sa.text("60"), nullable=False),
        sa.Column(
            "extra_headers",
            postgresql.JSONB(astext_type=sa.Text()),
            server_default=sa.text("'{}'::jsonb"),
            nullable=False,
        ),
        *_timestamps(),
        sa.CheckConstraint("kind IN ('openai')", name=op.f("ck_providers_kind")),
        sa.CheckConstraint("timeout_seconds > 0", name=op.f("ck_providers_timeout_positive")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_providers")),
        sa.UniqueConstraint("name", name=op.f("uq_providers_name")),
    )
    op.create_table(
        "chat_models",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("provider_id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.Column("upstream_id", sa.String(length=200), nullable=False),
        sa.Column("display_name", sa.String(length=100), nullable=False),
        sa.Column("description", sa.Text(), server_default=sa.text("''"), nullable=False),
        sa.Column("context_window", sa.Integer(), nullable=True),
        sa.Column("max_output_tokens", sa.Integer(), nullable=True),
        sa.Column("default_temperature", sa.Float(), nullable=True),
        sa.Column("enabled", sa.Boolean(), server_default=sa.true(), nullable=False),
        sa.Column(
            "allowed_roles",
            postgresql.ARRAY(sa.String(length=16)),
            server_default=sa.text("'{user,admin}'"),
            nullable=False,
        ),
        sa.Column("fallback_model_id", sa.Integer(), nullable=True),
        sa.Column("price_input_per_mtok", sa.Numeric(precision=12, scale=6), nullable=True),
        sa.Column("price_output_per_mtok", sa.Numeric(precision=12, scale=6), nullable=True),
        sa.Column("is_default", sa.Boolean(), server_default=sa.false(), nullable=False),
        *_timestamps(),
        sa.CheckConstraint(
            "context_window > 0", name=op.f("ck_chat_models_context_window_positive")
        ),
        sa.CheckConstraint(
            "max_output_tokens > 0", name=op.f("ck_chat_models_max_output_tokens_positive")
        ),
        sa.CheckConstraint(
            "default_temperature >= 0 AND default_temperature <= 2",
            name=op.f("ck_chat_models_temperature_range"),
        ),
        sa.CheckConstraint(
            "price_input_per_mtok >= 0 AND price_output_per_mtok >= 0",
            name=op.f("ck_chat_models_prices_non_negative"),
        ),
        sa.CheckConstraint(
            "fallback_model_id <> id", name=op.f("ck_chat_models_fallback_not_self")
        ),
        sa.ForeignKeyConstraint(
            ["provider_id"],
            ["providers.id"],
            name=op.f("fk_chat_models_provider_id_providers"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["fallback_model_id"],
            ["chat_models.id"],
            name=op.f("fk_chat_models_fallback_model_id_chat_models"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_chat_models")),
        sa.UniqueConstraint("name", name=op.f("uq_chat_models_name")),
    )
    op.create_index(
        "ix_chat_models_is_default",
        "chat_models",
        ["is_default"],
        unique=True,
        postgresql_where=sa.text("is_default"),
    )
    op.create_table(
        "api_keys",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.Column("prefix", sa.String(length=16), nullable=False),
        sa.Column("key_hash", sa.String(length=64), nullable=False),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_used_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["user_id"],
            ["users.id"],
            name=op.f("fk_api_keys_user_id_users"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_api_keys")),
        sa.UniqueConstraint("key_hash", name=op.f("uq_api_keys_key_hash")),
    )
    op.create_index("ix_api_keys_user_id", "api_keys", ["user_id"])

    op.add_column("conversations", sa.Column("model_name", sa.String(length=100), nullable=True))
    op.add_column("conversations", sa.Column("system_prompt", sa.Text(), nullable=True))
    op.add_column("conversations", sa.Column("temperature", sa.Float(), nullable=True))
    op.create_check_constraint(
        op.f("ck_conversations_system_prompt_length"),
        "conversations",
        "char_length(system_prompt) <= 4000",
    )
    op.create_check_constraint(
        op.f("ck_conversations_temperature_range"),
        "conversations",
        "temperature >= 0 AND temperature <= 2",
    )
    op.add_column("users", sa.Column("default_model", sa.String(length=100), nullable=True))
    op.add_column("users", sa.Column("daily_token_quota", sa.Integer(), nullable=True))
    op.create_check_constraint(
        op.f("ck_users_daily_token_quota_non_negative"), "users", "daily_token_quota >= 0"
    )


def downgrade() -> None:
    op.drop_constraint(op.f("ck_users_daily_token_quota_non_negative"), "users", type_="check")
    op.drop_column("users", "daily_token_quota")
    op.drop_column("users", "default_model")
    op.drop_constraint(op.f("ck_conversations_temperature_range"), "conversations", type_="check")
    op.drop_constraint(
        op.f("ck_conversations_system_prompt_length"), "conversations", type_="check"
    )
    op.drop_column("conversations", "temperature")
    op.drop_column("conversations", "system_prompt")
    op.drop_column("conversations", "model_name")
    op.drop_index("ix_api_keys_user_id", table_name="api_keys")
    op.drop_table("api_keys")
    op.drop_index("ix_chat_models_is_default", table_name="chat_models")
    op.drop_table("chat_models")
    op.drop_table("providers")
