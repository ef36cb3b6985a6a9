"""Auth service blueprint: accounts, tokens (login, refresh, logout) and browser sessions."""

from webapp.auth.routes import bp

__all__ = ["bp"]
