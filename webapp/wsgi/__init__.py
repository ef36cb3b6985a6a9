"""WSGI entry points, one per service: ``gunicorn webapp.wsgi.<service>:app``."""

from __future__ import annotations

from flask import Flask

from webapp.app import create_app
from webapp.services_list import SERVICES

__all__ = ["service_app"]


def service_app(wsgi_module: str) -> Flask:
    """Build the app of the service whose WSGI module is ``wsgi_module``.

    Args:
        wsgi_module: The calling module's ``__name__``, e.g. ``webapp.wsgi.chat``.

    Returns:
        The service's application.

    Raises:
        ValueError: If no service in ``webapp.services_list.SERVICES`` has that module.
    """
    for service in SERVICES:
        if service.wsgi_module == wsgi_module:
            return create_app(service.name)
    msg = f"{wsgi_module} is the WSGI module of no service in webapp.services_list"
    raise ValueError(msg)
