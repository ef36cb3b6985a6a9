"""Account pages of the auth service, under ``/account``: sign in, register, profile."""

from __future__ import annotations

from flask import Response, redirect, url_for
from flask_jwt_extended import current_user, jwt_required, unset_jwt_cookies

from webapp.extensions import db
from webapp.models import User
from webapp.web import page_blueprint, render_page

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


@bp.post("/sign-out-everywhere")
@jwt_required(locations=["cookies"])
def sign_out_everywhere() -> Response:
    """End every session of the signed-in user, this browser's included -> 204.

    Cookie-authenticated, so the CSRF header is required like on every unsafe API call.
    Raising the token version revokes every token the user holds, on every device, in the
    one check every service makes on every request (:mod:`webapp.security`).
    """
    # Incremented in SQL, as a password change does, so two requests at once both count.
    current_user.token_version = User.token_version + 1
    db.session.commit()
    response = Response(status=204)
    unset_jwt_cookies(response)
    return response
