"""Admin service blueprint: usage statistics and account control (the console grows here)."""

from webapp.admin import api_keys, webhooks  # noqa: F401 - register their routes on bp
from webapp.admin.routes import bp

__all__ = ["bp"]
