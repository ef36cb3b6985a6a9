"""WSGI entry points, one per service: ``gunicorn webapp.wsgi.<service>:app``."""

from __future__ import annotations

import gc

from flask import Flask

from webapp.app import create_app
from webapp.services_list import SERVICES

__all__ = ["service_app"]


def service_app(wsgi_module: str) -> Flask:
    """Build the app of the service whose WSGI module is ``wsgi_module``.

    Args:
        wsgi_module: The calling module's ``__name__``, e.g. ``webapp.wsgi.chat``.

    Returns:
        The service's application. Every object that exists once it is built is frozen out
        of the garbage collector's reach (``gc.freeze``): gunicorn builds it in the master
        (``preload_app``) and forks the workers from there, and a collection in a worker would
        otherwise write to the header of each of those objects, copying the pages they are on
        into every worker (their PSS) although none of them changed.

    Raises:
        ValueError: If no service in ``webapp.services_list.SERVICES`` has that module.
    """
    for service in SERVICES:
        if service.wsgi_module == wsgi_module:
            app = create_app(service.name)
            gc.freeze()
            return app
    msg = f"{wsgi_module} is the WSGI module of no service in webapp.services_list"
    raise ValueError(msg)
