"""Admin pages of the admin service, under ``/admin``, over the admin API.

The pages are shells like every other; the admin API refuses non-admins (403), and the page
then says so instead of showing anything.
"""

from __future__ import annotations

from webapp.models import USER_ROLES, WEBHOOK_EVENTS
from webapp.services.audit import ACTIONS
from webapp.web.pages import page_blueprint, render_page

bp = page_blueprint("admin_pages", __name__, url_prefix="/admin")

# (endpoint, path, title) of every admin page, in the order of the navigation.
ADMIN_PAGES = (
    ("dashboard", "/", "Dashboard"),
    ("users", "/users", "Users"),
    ("audit", "/audit", "Audit log"),
    ("webhooks", "/webhooks", "Webhooks"),
    ("providers", "/providers", "Providers"),
    ("models", "/models", "Models"),
    ("api_keys", "/api-keys", "API keys"),
    ("status", "/status", "System status"),
)


def _page(endpoint: str, title: str, **context: object) -> str:
    return render_page(
        f"admin/{endpoint}.html",
        title=title,
        script="admin.js",
        admin_pages=ADMIN_PAGES,
        admin_page=endpoint,
        **context,
    )


def _action_prefixes() -> list[str]:
    """The ``area.*`` filters the audit API accepts, one per area of the known actions."""
    return sorted({f"{action.split('.', 1)[0]}.*" for action in ACTIONS})


@bp.get("/")
def dashboard() -> str:
    """Render the dashboard: totals and usage over time."""
    return _page("dashboard", "Dashboard")


@bp.get("/users")
def users() -> str:
    """Render the users table with its actions."""
    return _page("users", "Users")


@bp.get("/audit")
def audit() -> str:
    """Render the audit log."""
    # The filter suggests the actions of the API's own list; any other dotted name (such as
    # the webhooks' admin.webhook_*) may be typed.
    return _page("audit", "Audit log", audit_actions=ACTIONS, action_prefixes=_action_prefixes())


@bp.get("/webhooks")
def webhooks() -> str:
    """Render the webhooks and their delivery history."""
    # The form offers the events the API accepts (the one list, in webapp.models).
    return _page("webhooks", "Webhooks", webhook_events=WEBHOOK_EVENTS)


@bp.get("/providers")
def providers() -> str:
    """Render the model providers (the managed ones read-only) and their models upstream."""
    return _page("providers", "Providers")


@bp.get("/models")
def models() -> str:
    """Render the model catalogue (``?provider=&upstream_id=`` fills the form for a new one)."""
    # The roles a model may be allowed to: the one list, in webapp.models.
    return _page("models", "Models", roles=USER_ROLES)


@bp.get("/api-keys")
def api_keys() -> str:
    """Render every user's personal API keys (by prefix), each revocable."""
    return _page("api_keys", "API keys")


@bp.get("/status")
def status() -> str:
    """Render the system status."""
    return _page("status", "System status")
