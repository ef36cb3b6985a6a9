"""Admin service blueprint: usage statistics and account control (the console grows here)."""

from webapp.admin import webhooks  # noqa: F401 - registers the webhook routes on bp
from webapp.admin.routes import bp

__all__ = ["bp"]
