"""Admin service blueprint: usage statistics and account control (the console grows here)."""

from webapp.admin.routes import bp

__all__ = ["bp"]
