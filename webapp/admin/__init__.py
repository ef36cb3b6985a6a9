"""Admin service blueprint: usage statistics and account control (the console grows here)."""

from webapp.admin import (
    api_keys,  # noqa: F401 - registers the API key routes on bp
    catalogue,  # noqa: F401 - registers the catalogue routes on bp
    webhooks,  # noqa: F401 - registers the webhook routes on bp
)
from webapp.admin.routes import bp

__all__ = ["bp"]
