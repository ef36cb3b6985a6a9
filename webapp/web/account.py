"""Account pages of the auth service, under ``/account``: sign in, register, profile."""

from __future__ import annotations

from flask import redirect, url_for
from werkzeug.wrappers import Response

from webapp.web.pages import page_blueprint, render_page

bp = page_blueprint("account_pages", __name__, url_prefix="/account")


@bp.get("/")
def index() -> Response:
    """Send ``/account/`` to the profile."""
    return redirect(url_for(".profile"))


@bp.get("/login")
def login() -> str:
    """Render the sign-in form (``POST /api/v1/auth/session``)."""
    return render_page("account/login.html", title="Sign in", script="account.js")


@bp.get("/register")
def register() -> str:
    """Render the registration form (``POST /api/v1/auth/register``, then sign in)."""
    return render_page("account/register.html", title="Create an account", script="account.js")


@bp.get("/profile")
def profile() -> str:
    """Render the profile: display name, password change, sign out everywhere."""
    return render_page("account/profile.html", title="Your account", script="account.js")
