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

from flask import Flask

from webapp.services_list import ALL, SERVICES
from webapp.web.pages import asset_url

__all__ = ["PAGE_BLUEPRINTS", "register_pages"]

PAGE_BLUEPRINTS = ("account_pages", "chat_pages", "admin_pages")
"""Names of the page blueprints: web UI, not API (the OpenAPI documents leave them out)."""


def register_pages(app: Flask, service: str) -> None:
    """Register the page blueprints of ``service`` ("all": every one) on ``app``.

    Args:
        app: The application.
        service: "auth", "chat", "admin" or "all".
    """
    app.jinja_env.globals["asset_url"] = asset_url
    # Imported here: a service loads only its own pages.
    for each in SERVICES:
        if service in (each.name, ALL):
            app.register_blueprint(import_module(each.pages_module).bp)
