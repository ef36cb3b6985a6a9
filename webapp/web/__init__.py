"""Pages of the web UI: server-rendered shells, one blueprint per service.

Each page is a Jinja template with no user data in it; its script (``webapp/static/js``) calls
the service's REST API with the browser's session cookies and renders the answers. So the pages
need no authentication of their own, cannot leak anything a signed-out visitor should not see,
and every rule (ownership, roles, limits) stays in one place: the API.

- auth service: ``/account/login``, ``/account/register``, ``/account/profile``
  (:mod:`webapp.web.account`);
- chat service: ``/``, the chat app (:mod:`webapp.web.chat`);
- admin service: ``/admin/...`` (:mod:`webapp.web.admin`).

Scripts, styles and images are files under ``webapp/static`` shipped in the wheel and served
at ``/static/`` by every service, so the UI works air-gapped. No page carries an inline script
or style, so the Content-Security-Policy allows only files from this origin.
"""

from __future__ import annotations

from importlib import import_module
from typing import Any

from flask import Blueprint, Flask, Response, render_template, url_for

from webapp.services_list import ALL, SERVICES

__all__ = ["PAGE_BLUEPRINTS", "PAGE_CSP", "page_blueprint", "register_pages", "render_page"]

PAGE_BLUEPRINTS = ("account_pages", "chat_pages", "admin_pages")
"""Names of the page blueprints: web UI, not API (the OpenAPI documents leave them out)."""

# The public site's policy (nginx replaces this header with its own, roles/nginx): scripts,
# styles, images and API calls from this origin only; nothing inline, no plugins, no framing.
PAGE_CSP = (
    "default-src 'self'; img-src 'self' data:; object-src 'none'; base-uri 'self';"
    " form-action 'self'; frame-ancestors 'none'"
)


def _asset_url(filename: str) -> str:
    """Return the URL of a static file, versioned so a new release is never served stale."""
    from webapp import __version__

    return url_for("static", filename=filename, v=__version__)


def _page_headers(response: Response) -> Response:
    response.headers.setdefault("Content-Security-Policy", PAGE_CSP)
    response.headers.setdefault("X-Content-Type-Options", "nosniff")
    response.headers.setdefault("Referrer-Policy", "same-origin")
    # The shells hold no data, but a shared cache must never serve one person's page to another.
    response.headers.setdefault("Cache-Control", "no-cache")
    return response


def page_blueprint(name: str, import_name: str, url_prefix: str | None = None) -> Blueprint:
    """Create a blueprint for pages: its responses carry the page security headers.

    Args:
        name: The blueprint's name.
        import_name: The module defining it.
        url_prefix: Where its pages live.

    Returns:
        The blueprint.
    """
    bp = Blueprint(name, import_name, url_prefix=url_prefix)
    bp.after_request(_page_headers)
    return bp


def render_page(template: str, *, title: str, script: str, **context: Any) -> str:
    """Render a page shell.

    Args:
        template: The template under ``webapp/templates``.
        title: The page title.
        script: The page's module under ``static/js`` (e.g. ``chat.js``).
        **context: More template variables (never user data: the page loads that itself).

    Returns:
        The HTML.
    """
    return render_template(template, title=title, page_script=script, **context)


def register_pages(app: Flask, service: str) -> None:
    """Register the page blueprints of ``service`` ("all": every one) on ``app``.

    Args:
        app: The application.
        service: "auth", "chat", "admin" or "all".
    """
    app.jinja_env.globals["asset_url"] = _asset_url
    # Imported here: a service loads only its own pages.
    for each in SERVICES:
        if service in (each.name, ALL):
            app.register_blueprint(import_module(each.pages_module).bp)
