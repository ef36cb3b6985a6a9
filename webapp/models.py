"""Database models: users, their conversations and the messages in them.

The migration in ``webapp/migrations/versions`` must describe exactly these tables; an
integration test applies it to an empty database and compares the result with this metadata.
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    Date,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    Numeric,
    String,
    Text,
    false,
    func,
    text,
    true,
)
from sqlalchemy.dialects.postgresql import ARRAY, INET, JSONB
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

__all__ = [
    "API_KEY_NAME_MAX_LENGTH",
    "AUDIT_ACTION_MAX_LENGTH",
    "BIGINT_MAX",
    "CONVERSATION_TITLE_MAX_LENGTH",
    "DISPLAY_NAME_MAX_LENGTH",
    "EMAIL_MAX_LENGTH",
    "INTEGER_MAX",
    "MESSAGE_MAX_LENGTH",
    "MESSAGE_ROLES",
    "MESSAGE_STATUSES",
    "MODEL_NAME_MAX_LENGTH",
    "PROVIDER_KINDS",
    "PROVIDER_NAME_MAX_LENGTH",
    "SYSTEM_PROMPT_MAX_LENGTH",
    "UPSTREAM_MODEL_ID_MAX_LENGTH",
    "USER_ROLES",
    "WEBHOOK_DELIVERY_STATUSES",
    "WEBHOOK_DESCRIPTION_MAX_LENGTH",
    "WEBHOOK_EVENTS",
    "WEBHOOK_URL_MAX_LENGTH",
    "ApiKey",
    "AuditEvent",
    "Base",
    "ChatModel",
    "Conversation",
    "DailyUsage",
    "Message",
    "Provider",
    "User",
    "Webhook",
    "WebhookAttempt",
    "WebhookDelivery",
    "isoformat_utc",
    "max_id",
    "utcnow",
]

USER_ROLES = ("user", "admin")
MESSAGE_ROLES = ("user", "assistant")
MESSAGE_STATUSES = ("streaming", "complete", "stopped", "failed")
"""``streaming``: a reply being generated; ``complete``: a user message, or a whole reply;
``stopped``: a reply the user stopped, holding what was generated until then; ``failed``: a
reply the model could not produce (holding whatever part of it was streamed)."""
# RFC 5321 limits a forward path to 256 octets including the angle brackets.
EMAIL_MAX_LENGTH = 254
DISPLAY_NAME_MAX_LENGTH = 100
CONVERSATION_TITLE_MAX_LENGTH = 200
MESSAGE_MAX_LENGTH = 8000
AUDIT_ACTION_MAX_LENGTH = 64
PROVIDER_NAME_MAX_LENGTH = 64
# Of a model's public name (what clients send as ``model``), also where conversations, users and
# messages refer to one.
MODEL_NAME_MAX_LENGTH = 100
UPSTREAM_MODEL_ID_MAX_LENGTH = 200
SYSTEM_PROMPT_MAX_LENGTH = 4000
API_KEY_NAME_MAX_LENGTH = 100
PROVIDER_KINDS = ("openai",)
"""Kinds of stored providers: ``openai`` is any OpenAI-compatible server. The built-in offline
model is a provider of its own that is never stored (``webapp.catalogue``)."""
# Largest value of PostgreSQL's INTEGER and BIGINT: an id, cursor or token subject beyond its
# column's range can match nothing and must be refused before it reaches the database, which
# would fail the whole statement ("integer out of range").
INTEGER_MAX = 2**31 - 1
BIGINT_MAX = 2**63 - 1

# Deterministic constraint names, so migrations can refer to (and drop) them by name.
NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


def utcnow() -> datetime:
    """Return the current time as a timezone-aware UTC datetime."""
    return datetime.now(UTC)


def isoformat_utc(value: datetime) -> str:
    """Format a timezone-aware datetime as ISO 8601 in UTC.

    PostgreSQL returns ``timestamptz`` values in the session's time zone, which depends on the
    server's configuration; the API always answers in UTC.

    Args:
        value: An aware datetime.

    Returns:
        For example ``2025-11-25T16:00:00.123456+00:00``.
    """
    return value.astimezone(UTC).isoformat()


def max_id(column: Any) -> int:
    """Return the largest value an integer column (a primary key such as ``User.id``) can hold.

    Args:
        column: A mapped INTEGER or BIGINT column attribute.

    Returns:
        ``BIGINT_MAX`` for a BIGINT column, else ``INTEGER_MAX``.
    """
    return BIGINT_MAX if isinstance(column.type, BigInteger) else INTEGER_MAX


class Base(DeclarativeBase):
    """Declarative base carrying the naming convention."""

    metadata = MetaData(naming_convention=NAMING_CONVENTION)


def _in(column: str, values: tuple[str, ...]) -> str:
    quoted = ", ".join(f"'{value}'" for value in values)
    return f"{column} IN ({quoted})"


class User(Base):
    """An account. ``email`` is stored lower-cased so uniqueness ignores case.

    ``token_version`` is copied into every token issued to the user (the ``ver`` claim) and
    checked on every request: raising it (password change, deactivation) revokes every token
    the user holds at once.
    """

    __tablename__ = "users"
    __table_args__ = (
        CheckConstraint(_in("role", USER_ROLES), name="role"),
        CheckConstraint("email = lower(email)", name="email_lowercase"),
        CheckConstraint("daily_token_quota >= 0", name="daily_token_quota_non_negative"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    email: Mapped[str] = mapped_column(String(EMAIL_MAX_LENGTH), unique=True)
    password_hash: Mapped[str] = mapped_column(String(255))
    display_name: Mapped[str] = mapped_column(String(DISPLAY_NAME_MAX_LENGTH))
    role: Mapped[str] = mapped_column(String(16), default="user", server_default=text("'user'"))
    is_active: Mapped[bool] = mapped_column(Boolean, default=True, server_default=true())
    token_version: Mapped[int] = mapped_column(Integer, default=0, server_default=text("0"))
    created_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), default=utcnow, server_default=func.now()
    )
    # The model the user's new conversations answer with (a catalogue name); null: the system
    # default. A name that no longer resolves falls back to the default too.
    default_model: Mapped[str | None] = mapped_column(String(MODEL_NAME_MAX_LENGTH))
    # Tokens a day this user may spend; null: LLM_DAILY_TOKEN_QUOTA; 0: no quota.
    daily_token_quota: Mapped[int | None] = mapped_column(Integer)

    conversations: Mapped[list[Conversation]] = relationship(
        back_populates="user", cascade="all, delete-orphan", passive_deletes=True
    )

    @property
    def is_admin(self) -> bool:
        """Whether the user has the admin role."""
        return self.role == "admin"


class Conversation(Base):
    """A conversation between one user and the bot."""

    __tablename__ = "conversations"
    __table_args__ = (
        # Listing a user's conversations newest first is the hot query.
        Index("ix_conversations_user_id_updated_at", "user_id", "updated_at"),
        CheckConstraint(
            f"char_length(system_prompt) <= {SYSTEM_PROMPT_MAX_LENGTH}", name="system_prompt_length"
        ),
        CheckConstraint("temperature >= 0 AND temperature <= 2", name="temperature_range"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    # Null until the first message names the conversation (or the client gives a title).
    title: Mapped[str | None] = mapped_column(String(CONVERSATION_TITLE_MAX_LENGTH))
    # The catalogue model chosen for this conversation; null: the owner's default model.
    model_name: Mapped[str | None] = mapped_column(String(MODEL_NAME_MAX_LENGTH))
    # Sent before the history with every request of this conversation.
    system_prompt: Mapped[str | None] = mapped_column(Text)
    # Overrides the model's default temperature.
    temperature: Mapped[float | None] = mapped_column(Float)
    created_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), default=utcnow, server_default=func.now()
    )
    updated_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), default=utcnow, onupdate=utcnow, server_default=func.now()
    )

    user: Mapped[User] = relationship(back_populates="conversations")
    messages: Mapped[list[Message]] = relationship(
        back_populates="conversation",
        cascade="all, delete-orphan",
        passive_deletes=True,
        order_by="Message.id",
    )


class Message(Base):
    """One message of a conversation, from the user or the assistant.

    An assistant message is created (``status="streaming"``, empty content) when its generation
    starts, and completed in place when the generation ends, so a reply has one id from its
    first token on.
    """

    __tablename__ = "messages"
    __table_args__ = (
        CheckConstraint(_in("role", MESSAGE_ROLES), name="role"),
        CheckConstraint(_in("status", MESSAGE_STATUSES), name="status"),
        CheckConstraint("tokens_in >= 0 AND tokens_out >= 0", name="tokens_non_negative"),
        CheckConstraint("latency_ms >= 0", name="latency_non_negative"),
        # History is read per conversation in insertion order.
        Index("ix_messages_conversation_id_id", "conversation_id", "id"),
        # The admin console's usage figures select a range of days (migration 0004).
        Index("ix_messages_created_at", "created_at"),
    )

    # BIGINT: messages are the one table that can outgrow a 32-bit key.
    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    conversation_id: Mapped[int] = mapped_column(ForeignKey("conversations.id", ondelete="CASCADE"))
    role: Mapped[str] = mapped_column(String(16))
    content: Mapped[str] = mapped_column(Text)
    # The model that wrote an assistant message ("offline" or the provider's model name).
    model: Mapped[str | None] = mapped_column(String(200))
    tokens_in: Mapped[int] = mapped_column(Integer, default=0, server_default=text("0"))
    tokens_out: Mapped[int] = mapped_column(Integer, default=0, server_default=text("0"))
    status: Mapped[str] = mapped_column(
        String(16), default="complete", server_default=text("'complete'")
    )
    # Of assistant messages: milliseconds from the start of the generation to its last token.
    latency_ms: Mapped[int | None] = mapped_column(Integer)
    # Served from the reply cache, without calling a model.
    cached: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    # Answered by the fallback model because the primary failed.
    fallback: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    created_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), default=utcnow, server_default=func.now()
    )

    conversation: Mapped[Conversation] = relationship(back_populates="messages")


class DailyUsage(Base):
    """Tokens a user's replies cost a model on one UTC day: what the daily quota counts.

    Kept apart from the messages so that deleting a conversation (or regenerating a reply) does
    not give the tokens back. Replies served from the cache cost nothing and are not counted.
    """

    __tablename__ = "daily_usage"
    __table_args__ = (
        CheckConstraint("tokens_in >= 0 AND tokens_out >= 0 AND replies >= 0", name="non_negative"),
    )

    user_id: Mapped[int] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), primary_key=True
    )
    day: Mapped[date] = mapped_column(Date, primary_key=True)
    tokens_in: Mapped[int] = mapped_column(BigInteger, default=0, server_default=text("0"))
    tokens_out: Mapped[int] = mapped_column(BigInteger, default=0, server_default=text("0"))
    replies: Mapped[int] = mapped_column(Integer, default=0, server_default=text("0"))


class AuditEvent(Base):
    """One security-relevant event: an admin action, a failed login, a revoked session...

    Append-only: a trigger of migration 0004 refuses every UPDATE and DELETE of a row. There is
    no foreign key to ``users``: deleting a user keeps the history, with the e-mail address the
    actor had at the time (``actor_email``).
    """

    __tablename__ = "audit_events"
    __table_args__ = (
        # Every listing is newest first (keyset on id), filtered by one of these.
        Index("ix_audit_events_action_id", "action", "id"),
        Index("ix_audit_events_actor_id_id", "actor_id", "id"),
        Index("ix_audit_events_target_type_target_id_id", "target_type", "target_id", "id"),
        Index("ix_audit_events_created_at", "created_at"),
    )

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    created_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), default=utcnow, server_default=func.now()
    )
    # Dotted, e.g. "auth.login_failed", "admin.user_disabled".
    action: Mapped[str] = mapped_column(String(AUDIT_ACTION_MAX_LENGTH))
    actor_id: Mapped[int | None] = mapped_column(Integer)
    actor_email: Mapped[str | None] = mapped_column(String(EMAIL_MAX_LENGTH))
    target_type: Mapped[str | None] = mapped_column(String(32))
    target_id: Mapped[str | None] = mapped_column(String(EMAIL_MAX_LENGTH))
    source_ip: Mapped[str | None] = mapped_column(INET)
    details: Mapped[dict[str, Any]] = mapped_column(
        JSONB, default=dict, server_default=text("'{}'::jsonb")
    )


WEBHOOK_EVENTS = ("user.registered", "user.disabled", "message.completed")
"""Events a webhook can subscribe to (``ping``, sent by the test route, goes to one hook only)."""
WEBHOOK_DELIVERY_STATUSES = ("pending", "failed", "succeeded", "dead")
"""``pending``: not tried yet; ``failed``: the last attempt failed, another is scheduled at
``next_attempt_at``; ``succeeded``: the receiver answered 2xx; ``dead``: every attempt failed."""
WEBHOOK_URL_MAX_LENGTH = 2048
WEBHOOK_DESCRIPTION_MAX_LENGTH = 200


class Webhook(Base):
    """An endpoint that receives signed POSTs for the events it subscribes to."""

    __tablename__ = "webhooks"
    __table_args__ = (CheckConstraint("cardinality(events) > 0", name="events_not_empty"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    url: Mapped[str] = mapped_column(String(WEBHOOK_URL_MAX_LENGTH))
    events: Mapped[list[str]] = mapped_column(ARRAY(String(64)))
    active: Mapped[bool] = mapped_column(Boolean, default=True, server_default=true())
    description: Mapped[str] = mapped_column(
        String(WEBHOOK_DESCRIPTION_MAX_LENGTH), default="", server_default=text("''")
    )
    # The admin who registered it; kept (as null) when that account is deleted.
    created_by: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    created_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), default=utcnow, server_default=func.now()
    )
    updated_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), default=utcnow, onupdate=utcnow, server_default=func.now()
    )


class WebhookDelivery(Base):
    """One event for one webhook, queued with the event and POSTed by the webhook worker.

    Written in the transaction of the event itself (an outbox), so an event is delivered if and
    only if it happened; the worker then tries until the receiver accepts it or the attempts
    run out.
    """

    __tablename__ = "webhook_deliveries"
    __table_args__ = (
        CheckConstraint(_in("status", WEBHOOK_DELIVERY_STATUSES), name="status"),
        CheckConstraint("attempts >= 0", name="attempts_non_negative"),
        # The worker's query: deliveries that are due, oldest first.
        Index("ix_webhook_deliveries_status_next_attempt_at", "status", "next_attempt_at"),
        # The console lists a webhook's deliveries newest first.
        Index("ix_webhook_deliveries_webhook_id_id", "webhook_id", "id"),
    )

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    webhook_id: Mapped[int] = mapped_column(ForeignKey("webhooks.id", ondelete="CASCADE"))
    event: Mapped[str] = mapped_column(String(64))
    payload: Mapped[dict[str, Any]] = mapped_column(JSONB)
    status: Mapped[str] = mapped_column(
        String(16), default="pending", server_default=text("'pending'")
    )
    attempts: Mapped[int] = mapped_column(Integer, default=0, server_default=text("0"))
    # When the worker may (next) try it; null once it succeeded or is dead.
    next_attempt_at: Mapped[datetime | None] = mapped_column(
        DateTime(timezone=True), default=utcnow, server_default=func.now()
    )
    last_status_code: Mapped[int | None] = mapped_column(Integer)
    last_error: Mapped[str | None] = mapped_column(Text)
    # A manual redelivery is a new delivery of the same event; this is the one it repeats.
    redelivery_of: Mapped[int | None] = mapped_column(
        ForeignKey("webhook_deliveries.id", ondelete="SET NULL")
    )
    created_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), default=utcnow, server_default=func.now()
    )
    updated_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), default=utcnow, onupdate=utcnow, server_default=func.now()
    )

    webhook: Mapped[Webhook] = relationship()
    attempt_log: Mapped[list[WebhookAttempt]] = relationship(
        back_populates="delivery",
        cascade="all, delete-orphan",
        passive_deletes=True,
        order_by="WebhookAttempt.id",
    )


class WebhookAttempt(Base):
    """One POST of a delivery (or the refusal to make it): when, how long, what came back."""

    __tablename__ = "webhook_attempts"
    __table_args__ = (
        CheckConstraint("duration_ms >= 0", name="duration_non_negative"),
        Index("ix_webhook_attempts_delivery_id_id", "delivery_id", "id"),
    )

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    delivery_id: Mapped[int] = mapped_column(
        ForeignKey("webhook_deliveries.id", ondelete="CASCADE")
    )
    attempted_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), default=utcnow, server_default=func.now()
    )
    # Null when no response came (refused address, connection error, timeout).
    status_code: Mapped[int | None] = mapped_column(Integer)
    duration_ms: Mapped[int] = mapped_column(Integer, default=0, server_default=text("0"))
    error: Mapped[str | None] = mapped_column(Text)

    delivery: Mapped[WebhookDelivery] = relationship(back_populates="attempt_log")


class Provider(Base):
    """A stored model provider: an OpenAI-compatible server the admins added.

    The API key is kept encrypted (``webapp.secretbox``, keys from PROVIDER_KEY_SECRETS); only
    its last four characters are stored in the clear, to tell keys apart in the admin console.
    """

    __tablename__ = "providers"
    __table_args__ = (
        CheckConstraint(_in("kind", PROVIDER_KINDS), name="kind"),
        CheckConstraint("timeout_seconds > 0", name="timeout_positive"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(PROVIDER_NAME_MAX_LENGTH), unique=True)
    kind: Mapped[str] = mapped_column(String(16), default="openai", server_default=text("'openai'"))
    base_url: Mapped[str] = mapped_column(String(2048))
    api_key_encrypted: Mapped[str | None] = mapped_column(Text)
    api_key_last4: Mapped[str | None] = mapped_column(String(4))
    timeout_seconds: Mapped[float] = mapped_column(Float, default=60.0, server_default=text("60"))
    extra_headers: Mapped[dict[str, str]] = mapped_column(
        JSONB, default=dict, server_default=text("'{}'::jsonb")
    )
    created_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), default=utcnow, server_default=func.now()
    )
    updated_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), default=utcnow, onupdate=utcnow, server_default=func.now()
    )

    models: Mapped[list[ChatModel]] = relationship(
        back_populates="provider", cascade="all, delete-orphan", passive_deletes=True
    )


class ChatModel(Base):
    """A model of a stored provider, under the name users and API clients choose it by."""

    __tablename__ = "chat_models"
    __table_args__ = (
        CheckConstraint("context_window > 0", name="context_window_positive"),
        CheckConstraint("max_output_tokens > 0", name="max_output_tokens_positive"),
        CheckConstraint(
            "default_temperature >= 0 AND default_temperature <= 2", name="temperature_range"
        ),
        CheckConstraint(
            "price_input_per_mtok >= 0 AND price_output_per_mtok >= 0", name="prices_non_negative"
        ),
        CheckConstraint("fallback_model_id <> id", name="fallback_not_self"),
        # At most one default model.
        Index(
            "ix_chat_models_is_default",
            "is_default",
            unique=True,
            postgresql_where=text("is_default"),
        ),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    provider_id: Mapped[int] = mapped_column(ForeignKey("providers.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(String(MODEL_NAME_MAX_LENGTH), unique=True)
    upstream_id: Mapped[str] = mapped_column(String(UPSTREAM_MODEL_ID_MAX_LENGTH))
    display_name: Mapped[str] = mapped_column(String(MODEL_NAME_MAX_LENGTH))
    description: Mapped[str] = mapped_column(Text, default="", server_default=text("''"))
    context_window: Mapped[int | None] = mapped_column(Integer)
    max_output_tokens: Mapped[int | None] = mapped_column(Integer)
    default_temperature: Mapped[float | None] = mapped_column(Float)
    enabled: Mapped[bool] = mapped_column(Boolean, default=True, server_default=true())
    allowed_roles: Mapped[list[str]] = mapped_column(
        ARRAY(String(16)), default=lambda: list(USER_ROLES), server_default=text("'{user,admin}'")
    )
    fallback_model_id: Mapped[int | None] = mapped_column(
        ForeignKey("chat_models.id", ondelete="SET NULL")
    )
    # Currency units per million tokens; null: no price, no cost in the usage reports.
    price_input_per_mtok: Mapped[Decimal | None] = mapped_column(Numeric(12, 6))
    price_output_per_mtok: Mapped[Decimal | None] = mapped_column(Numeric(12, 6))
    is_default: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    created_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), default=utcnow, server_default=func.now()
    )
    updated_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), default=utcnow, onupdate=utcnow, server_default=func.now()
    )

    provider: Mapped[Provider] = relationship(back_populates="models")
    fallback: Mapped[ChatModel | None] = relationship(remote_side=[id])


class ApiKey(Base):
    """A personal API key for the OpenAI-compatible API (``/v1``).

    Only the SHA-256 of the key is stored (keys are long random strings, so a fast hash does
    not make them guessable); the prefix tells keys apart in lists.
    """

    __tablename__ = "api_keys"
    __table_args__ = (Index("ix_api_keys_user_id", "user_id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(String(API_KEY_NAME_MAX_LENGTH))
    prefix: Mapped[str] = mapped_column(String(16))
    key_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), default=utcnow, server_default=func.now()
    )
    expires_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    last_used_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    revoked_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))

    user: Mapped[User] = relationship()
