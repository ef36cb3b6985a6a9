"""Admin service blueprint: usage statistics and account control (the console grows here)."""

from webapp.admin import (  # noqa: F401 - they register their routes on bp
    api_keys,
    catalogue,
    webhooks,
)
from webapp.admin.routes import bp

__all__ = ["bp"]
