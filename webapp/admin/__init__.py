"""Admin service blueprint: usage statistics (the admin console grows here)."""

from webapp.admin.routes import bp

__all__ = ["bp"]
