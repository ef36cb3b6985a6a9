"""Store every user's e-mail address in its canonical form (webapp.emails).

Addresses were stored trimmed and lower-cased; the canonical form also applies NFKC and
nameprep, so a full-width look-alike of an address is that address. An address whose canonical
form another account already holds (a look-alike registered before this revision) is left as
it is and reported: no account is merged or lost, and an operator decides which one to keep.
"""

import logging

import sqlalchemy as sa
from alembic import op

from webapp.emails import canonical_email
from webapp.models import EMAIL_MAX_LENGTH

revision = "0006"
down_revision = "0005"

logger = logging.getLogger("alembic.runtime.migration")


def upgrade() -> None:
    bind = op.get_bind()
    rows = bind.execute(sa.text("SELECT id, email FROM users ORDER BY id")).all()
    # Addresses already canonical keep theirs; then the oldest account of a look-alike group.
    claimed = {email for _, email in rows if canonical_email(email) == email}
    for user_id, email in rows:
        canonical = canonical_email(email)
        if canonical == email:
            continue
        if canonical in claimed or len(canonical) > EMAIL_MAX_LENGTH:
            logger.warning(
                "user %s keeps its address %r: its canonical form %r %s; change or delete one"
                " of the accounts",
                user_id,
                email,
                canonical,
                "belongs to another account" if canonical in claimed else "is too long",
            )
            continue
        claimed.add(canonical)
        bind.execute(
            sa.text("UPDATE users SET email = :email WHERE id = :id"),
            {"email": canonical, "id": user_id},
        )
        logger.info("user %s: address %r stored as %r", user_id, email, canonical)


def downgrade() -> None:
    # The spellings replaced were the same addresses; the canonical ones stay valid for 0005.
    pass
