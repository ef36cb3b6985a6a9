"""Chat bot web application: auth, chat and admin services."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from webapp.app import create_app

__all__ = ["create_app"]
__version__ = "0.1.0"


def __getattr__(name: str) -> Any:
    # Re-exported lazily: `import webapp.bot` (which must not pull in Flask) imports this
    # package first, and an eager `from webapp.app import create_app` would load Flask.
    if name == "create_app":
        from webapp.app import create_app

        return create_app
    msg = f"module {__name__!r} has no attribute {name!r}"
    raise AttributeError(msg)
