"""Admin pages of the admin service, under ``/admin``, over the admin API.

The pages are shells like every other; the admin API refuses non-admins (403), and the page
then says so instead of showing anything.
"""

from __future__ import annotations

from webapp.web import page_blueprint, render_page

bp = page_blueprint("admin_pages", __name__, url_prefix="/admin")

# (endpoint, path, title) of every admin page, in the order of the navigation.
ADMIN_PAGES = (
    ("dashboard", "/", "Dashboard"),
    ("users", "/users", "Users"),
    ("audit", "/audit", "Audit log"),
    ("webhooks", "/webhooks", "Webhooks"),
    ("status", "/status", "System status"),
)


def _page(endpoint: str, title: str) -> str:
    return render_page(
        f"admin/{endpoint}.html",
        title=title,
        script="admin.js",
        admin_pages=ADMIN_PAGES,
        admin_page=endpoint,
    )


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
    return _page("audit", "Audit log")


@bp.get("/webhooks")
def webhooks() -> str:
    """Render the webhooks and their delivery history."""
    return _page("webhooks", "Webhooks")


@bp.get("/status")
def status() -> str:
    """Render the system status."""
    return _page("status", "System status")
