"""OpenAPI paths and schemas of the auth service (``/api/v1/auth``)."""

from __future__ import annotations

from typing import Any

from webapp.openapi import api_keys
from webapp.openapi.components import Operations, all_required, created, no_content, ok, ref
from webapp.openapi.from_models import request_body, schemas
from webapp.request_models import auth as models

__all__ = ["PATHS", "SCHEMAS", "SECURITY_SCHEMES", "TAGS"]

Document = dict[str, Any]

TAGS: list[Document] = [
    {"name": "auth", "description": "Accounts, tokens and browser sessions."},
]

SECURITY_SCHEMES: Document = {
    "refreshBearer": {
        "type": "http",
        "scheme": "bearer",
        "bearerFormat": "JWT",
        "description": (
            "A refresh token from `POST /api/v1/auth/login` (or `/refresh`): accepted only by"
            " `/refresh`, which spends it, and `/logout`."
        ),
    },
    "refreshCookie": {
        "type": "apiKey",
        "in": "cookie",
        "name": "refresh_token_cookie",
        "description": (
            "The browser session's refresh token (HttpOnly cookie, sent only to"
            " `/api/v1/auth/`); unsafe requests also send the `csrf_refresh_token` cookie's"
            " value in `X-CSRF-TOKEN`, else 403."
        ),
    },
}

_SESSION_COOKIES = {
    "Set-Cookie": {
        "description": (
            "`access_token_cookie` and `refresh_token_cookie` (HttpOnly, Secure,"
            " SameSite=Strict), and `csrf_access_token` / `csrf_refresh_token`, readable by the"
            " page, whose values go in the `X-CSRF-TOKEN` header of unsafe requests."
        ),
        "schema": {"type": "string"},
    }
}

SCHEMAS: dict[str, Document] = {
    **schemas(
        models.RegisterRequest, models.LoginRequest, models.ProfileUpdate, models.PasswordChange
    ),
    "TokenPair": all_required(
        {
            "access_token": {"type": "string", "description": "Send as `Bearer` on API calls."},
            "refresh_token": {
                "type": "string",
                "description": "Send as `Bearer` to `/refresh` (single use) or `/logout`.",
            },
            "token_type": {"const": "Bearer"},
            "expires_in": {
                "type": "integer",
                "description": "Seconds until the access token expires.",
            },
            "user": ref("User"),
        }
    ),
    "BrowserSession": all_required(
        {
            "user": ref("User"),
            "csrf": all_required(
                {
                    "header": {"const": "X-CSRF-TOKEN"},
                    "access": {
                        "type": "string",
                        "description": "Echo in the header of unsafe requests (access cookie).",
                    },
                    "refresh": {
                        "type": "string",
                        "description": "Echo in the header of `/refresh` and `DELETE /session`.",
                    },
                }
            ),
            "expires_in": {
                "type": "integer",
                "description": "Seconds until the access cookie's token expires.",
            },
        },
        description="The tokens themselves are in HttpOnly cookies, out of the page's reach.",
    ),
    "NewTokens": {
        "description": "New tokens, the way the request's own came: in the body for a bearer"
        " token, in cookies for a browser session.",
        "oneOf": [ref("TokenPair"), ref("BrowserSession")],
    },
}

_NEW_TOKENS_HEADERS = {
    "Set-Cookie": {
        "description": "For a browser session: the new tokens and CSRF cookies.",
        "schema": {"type": "string"},
    }
}

_operation = Operations("auth", errors=("429",))
# Signing in, with tokens (`/login`) or cookies (`/session`).
_CREDENTIALS = request_body(models.LoginRequest, description="The credentials.")
# Missing or wrong credentials (401), or refused ones: a disabled account, no CSRF token (403).
_CREDENTIAL_ERRORS = ("401", "403")

PATHS: Document = {
    "/api/v1/auth/register": {
        "post": _operation(
            "register",
            "Create an account",
            created("UserEnvelope", "The account was created."),
            "409",
            description=(
                "Registration never grants admin; unknown fields (`role`, `is_admin`...) are"
                " refused. Limited per client address and per email."
            ),
            security=[],
            body=request_body(models.RegisterRequest, description="The new account."),
        )
    },
    "/api/v1/auth/login": {
        "post": _operation(
            "login",
            "Exchange credentials for an access and a refresh token",
            ok("TokenPair", "Signed in."),
            *_CREDENTIAL_ERRORS,
            description=(
                "Starts a new session. Limited per client address (every attempt) and per"
                " account (failed attempts), together with `POST /session`."
            ),
            security=[],
            body=_CREDENTIALS,
        )
    },
    "/api/v1/auth/refresh": {
        "post": _operation(
            "refresh",
            "Spend the refresh token for a new access and refresh token",
            ok("NewTokens", "New tokens.", headers=_NEW_TOKENS_HEADERS),
            *_CREDENTIAL_ERRORS,
            "503",
            description=(
                "The refresh token sent is spent: presenting it again revokes the whole"
                " session. Refused with 503 while the token store is down, since a spent token"
                " could not be recorded."
            ),
            security=[{"refreshBearer": []}, {"refreshCookie": []}],
        )
    },
    "/api/v1/auth/logout": {
        "post": _operation(
            "logout",
            "End the session: its access and refresh tokens stop working",
            no_content("Signed out; any session cookies are cleared."),
            *_CREDENTIAL_ERRORS,
            "503",
            description=(
                "Takes either token of the session (a client whose access token expired can"
                " still sign out with its refresh token), as a bearer token or the access"
                " cookie."
            ),
            security=[{"bearerAuth": []}, {"refreshBearer": []}, {"cookieAuth": []}],
        )
    },
    "/api/v1/auth/logout-all": {
        "post": _operation(
            "logoutAll",
            "Sign out everywhere: every session of the caller ends",
            no_content("Signed out everywhere; session cookies are cleared."),
            *_CREDENTIAL_ERRORS,
            description=(
                "Every access and refresh token the user holds, on every device, stops working"
                " at once (this one included). Recorded in the audit log."
            ),
        )
    },
    "/api/v1/auth/session": {
        "post": _operation(
            "createSession",
            "Sign a browser in: the tokens are set as HttpOnly cookies",
            ok("BrowserSession", "Signed in; cookies set.", headers=_SESSION_COOKIES),
            *_CREDENTIAL_ERRORS,
            description="Limited together with `POST /login`.",
            security=[],
            body=_CREDENTIALS,
        ),
        "delete": _operation(
            "deleteSession",
            "Sign a browser out: end its session and clear the cookies",
            no_content("Signed out; cookies cleared."),
            *_CREDENTIAL_ERRORS,
            "503",
            description=(
                "Authenticated by the refresh cookie, which outlives the access cookie, so it"
                " works however long the page was idle."
            ),
            security=[{"refreshCookie": []}],
        ),
    },
    "/api/v1/auth/me": {
        "get": _operation(
            "getMe",
            "The signed-in user",
            ok("UserEnvelope", "The user."),
            "401",
        ),
        "patch": _operation(
            "updateMe",
            "Change the signed-in user's profile",
            ok("UserEnvelope", "The updated user."),
            *_CREDENTIAL_ERRORS,
            body=request_body(models.ProfileUpdate, description="The fields to change."),
        ),
    },
    "/api/v1/auth/password": {
        "post": _operation(
            "changePassword",
            "Change the password; every session's tokens stop working",
            ok("NewTokens", "Changed; new tokens.", headers=_NEW_TOKENS_HEADERS),
            *_CREDENTIAL_ERRORS,
            description=(
                "This session continues with the new tokens in the response (cookies for a"
                " browser session); every other session must sign in again. A wrong current"
                " password is a 403 naming `current_password`, and counts towards a limit."
            ),
            body=request_body(models.PasswordChange, description="Old and new password."),
        )
    },
}

# The API key routes (webapp/auth/routes.py), documented with the admins' in one module.
PATHS.update(api_keys.AUTH_PATHS)
SCHEMAS.update(api_keys.AUTH_SCHEMAS)
