"""What every page of the web UI shares: its blueprint's security headers, its rendering.

The page modules (:mod:`webapp.web.account`, :mod:`webapp.web.chat`, :mod:`webapp.web.admin`)
build on these; :mod:`webapp.web` registers them.
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint, Response, render_template, url_for

from webapp import __version__

__all__ = ["PAGE_CSP", "asset_url", "page_blueprint", "render_page"]

# The public site's policy (nginx replaces this header with its own, roles/nginx): scripts,
# styles, images and API calls from this origin only; nothing inline, no plugins, no framing.
PAGE_CSP = (
    "default-src 'self'; img-src 'self' data:; object-src 'none'; base-uri 'self';"
    " form-action 'self'; frame-ancestors 'none'"
)


def asset_url(filename: str) -> str:
    """Return the URL of a static file, versioned so a new release is never served stale."""
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
