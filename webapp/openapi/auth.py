"""OpenAPI paths and schemas of the auth service (``/api/v1/auth``)."""

from __future__ import annotations

from typing import Any

from webapp.openapi.components import USER_AUTH, json_response, ref, responses
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
    "TokenPair": {
        "type": "object",
        "required": ["access_token", "refresh_token", "token_type", "expires_in", "user"],
        "properties": {
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
        },
    },
    "BrowserSession": {
        "type": "object",
        "description": "The tokens themselves are in HttpOnly cookies, out of the page's reach.",
        "required": ["user", "csrf", "expires_in"],
        "properties": {
            "user": ref("User"),
            "csrf": {
                "type": "object",
                "required": ["header", "access", "refresh"],
                "properties": {
                    "header": {"const": "X-CSRF-TOKEN"},
                    "access": {
                        "type": "string",
                        "description": "Echo in the header of unsafe requests (access cookie).",
                    },
                    "refresh": {
                        "type": "string",
                        "description": "Echo in the header of `/refresh` and `DELETE /session`.",
                    },
                },
            },
            "expires_in": {
                "type": "integer",
                "description": "Seconds until the access cookie's token expires.",
            },
        },
    },
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

PATHS: Document = {
    "/api/v1/auth/register": {
        "post": {
            "tags": ["auth"],
            "operationId": "register",
            "summary": "Create an account",
            "description": (
                "Registration never grants admin; unknown fields (`role`, `is_admin`...) are"
                " refused. Limited per client address and per email."
            ),
            "security": [],
            "requestBody": request_body(models.RegisterRequest, description="The new account."),
            "responses": responses(
                {"201": json_response("UserEnvelope", "The account was created.")},
                "400",
                "409",
                "413",
                "415",
                "429",
            ),
        }
    },
    "/api/v1/auth/login": {
        "post": {
            "tags": ["auth"],
            "operationId": "login",
            "summary": "Exchange credentials for an access and a refresh token",
            "description": (
                "Starts a new session. Limited per client address (every attempt) and per"
                " account (failed attempts), together with `POST /session`."
            ),
            "security": [],
            "requestBody": request_body(models.LoginRequest, description="The credentials."),
            "responses": responses(
                {"200": json_response("TokenPair", "Signed in.")},
                "400",
                "401",
                "403",
                "413",
                "415",
                "429",
            ),
        }
    },
    "/api/v1/auth/refresh": {
        "post": {
            "tags": ["auth"],
            "operationId": "refresh",
            "summary": "Spend the refresh token for a new access and refresh token",
            "description": (
                "The refresh token sent is spent: presenting it again revokes the whole"
                " session. Refused with 503 while the token store is down, since a spent token"
                " could not be recorded."
            ),
            "security": [{"refreshBearer": []}, {"refreshCookie": []}],
            "responses": responses(
                {"200": json_response("NewTokens", "New tokens.", headers=_NEW_TOKENS_HEADERS)},
                "401",
                "403",
                "429",
                "503",
            ),
        }
    },
    "/api/v1/auth/logout": {
        "post": {
            "tags": ["auth"],
            "operationId": "logout",
            "summary": "End the session: its access and refresh tokens stop working",
            "description": (
                "Takes either token of the session (a client whose access token expired can"
                " still sign out with its refresh token), as a bearer token or the access"
                " cookie."
            ),
            "security": [{"bearerAuth": []}, {"refreshBearer": []}, {"cookieAuth": []}],
            "responses": responses(
                {"204": {"description": "Signed out; any session cookies are cleared."}},
                "401",
                "403",
                "429",
                "503",
            ),
        }
    },
    "/api/v1/auth/logout-all": {
        "post": {
            "tags": ["auth"],
            "operationId": "logoutAll",
            "summary": "Sign out everywhere: every session of the caller ends",
            "description": (
                "Every access and refresh token the user holds, on every device, stops working"
                " at once (this one included). Recorded in the audit log."
            ),
            "security": [{"bearerAuth": []}, {"cookieAuth": []}],
            "responses": responses(
                {"204": {"description": "Signed out everywhere; session cookies are cleared."}},
                "401",
                "403",
                "429",
            ),
        }
    },
    "/api/v1/auth/session": {
        "post": {
            "tags": ["auth"],
            "operationId": "createSession",
            "summary": "Sign a browser in: the tokens are set as HttpOnly cookies",
            "description": "Limited together with `POST /login`.",
            "security": [],
            "requestBody": request_body(models.LoginRequest, description="The credentials."),
            "responses": responses(
                {
                    "200": json_response(
                        "BrowserSession", "Signed in; cookies set.", headers=_SESSION_COOKIES
                    )
                },
                "400",
                "401",
                "403",
                "413",
                "415",
                "429",
            ),
        },
        "delete": {
            "tags": ["auth"],
            "operationId": "deleteSession",
            "summary": "Sign a browser out: end its session and clear the cookies",
            "description": (
                "Authenticated by the refresh cookie, which outlives the access cookie, so it"
                " works however long the page was idle."
            ),
            "security": [{"refreshCookie": []}],
            "responses": responses(
                {"204": {"description": "Signed out; cookies cleared."}},
                "401",
                "403",
                "429",
                "503",
            ),
        },
    },
    "/api/v1/auth/me": {
        "get": {
            "tags": ["auth"],
            "operationId": "getMe",
            "summary": "The signed-in user",
            "security": USER_AUTH,
            "responses": responses(
                {"200": json_response("UserEnvelope", "The user.")}, "401", "429"
            ),
        },
        "patch": {
            "tags": ["auth"],
            "operationId": "updateMe",
            "summary": "Change the signed-in user's profile",
            "security": USER_AUTH,
            "requestBody": request_body(models.ProfileUpdate, description="The fields to change."),
            "responses": responses(
                {"200": json_response("UserEnvelope", "The updated user.")},
                "400",
                "401",
                "403",
                "413",
                "415",
                "429",
            ),
        },
    },
    "/api/v1/auth/password": {
        "post": {
            "tags": ["auth"],
            "operationId": "changePassword",
            "summary": "Change the password; every session's tokens stop working",
            "description": (
                "This session continues with the new tokens in the response (cookies for a"
                " browser session); every other session must sign in again. A wrong current"
                " password is a 403 naming `current_password`, and counts towards a limit."
            ),
            "security": USER_AUTH,
            "requestBody": request_body(models.PasswordChange, description="Old and new password."),
            "responses": responses(
                {
                    "200": json_response(
                        "NewTokens", "Changed; new tokens.", headers=_NEW_TOKENS_HEADERS
                    )
                },
                "400",
                "401",
                "403",
                "413",
                "415",
                "429",
            ),
        }
    },
}
