"""The three services of the web app: the one list every other part derives them from.

Each service is one gunicorn process group serving the Flask app ``create_app(<name>)`` builds
from its WSGI module. The Ansible side (``app_services`` in ``playbooks/vars/wiring.yml``)
runs one systemd unit per entry; ``tests/unit/test_role_defaults.py`` checks that the names,
ports and WSGI modules there are these.

This module imports nothing of the app (neither Flask nor the blueprints): settings, gunicorn
hooks and tools read it without loading the app.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["ALL", "SERVICES", "SERVICE_NAMES", "Service", "service_named"]


@dataclass(frozen=True)
class Service:
    """One service of the web app.

    Attributes:
        name: The service name: its blueprint, unit ``chatbot@<name>``, log and metric label.
        port: The TCP port the role gives it on each app host.
        api_module: The package whose ``bp`` is the service's API blueprint.
        pages_module: The module whose ``bp`` is the service's browser pages blueprint.
        more_api_modules: Packages of further API blueprints the service serves (the chat
            service's OpenAI-compatible ``/v1``).
    """

    name: str
    port: int
    api_module: str
    pages_module: str
    more_api_modules: tuple[str, ...] = ()

    @property
    def api_modules(self) -> tuple[str, ...]:
        """Return every package whose ``bp`` the service registers, its own API first."""
        return (self.api_module, *self.more_api_modules)

    @property
    def wsgi_module(self) -> str:
        """Return the WSGI module gunicorn loads (``<module>:app``)."""
        return f"webapp.wsgi.{self.name}"

    @property
    def local_url(self) -> str:
        """Return the service's base URL on the loopback interface of its app host."""
        return f"http://127.0.0.1:{self.port}"


SERVICES: tuple[Service, ...] = (
    Service("auth", 8001, "webapp.auth", "webapp.web.account"),
    Service("chat", 8002, "webapp.chat", "webapp.web.chat", ("webapp.openai_api",)),
    Service("admin", 8003, "webapp.admin", "webapp.web.admin"),
)
SERVICE_NAMES: tuple[str, ...] = tuple(service.name for service in SERVICES)
# The pseudo-service that runs every blueprint in one app (development server, tests).
ALL = "all"


def service_named(name: str) -> Service:
    """Return the service called ``name``.

    Args:
        name: One of ``SERVICE_NAMES``.

    Returns:
        The service.

    Raises:
        ValueError: If no service has that name.
    """
    for service in SERVICES:
        if service.name == name:
            return service
    msg = f"unknown service {name!r}; expected one of {', '.join(SERVICE_NAMES)}"
    raise ValueError(msg)
