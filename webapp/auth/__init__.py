"""Auth service blueprint: registration, login, token refresh and the current user."""

from webapp.auth.routes import bp

__all__ = ["bp"]
