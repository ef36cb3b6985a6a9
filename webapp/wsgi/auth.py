"""WSGI entry point of the auth service: ``gunicorn webapp.wsgi.auth:app``."""

from webapp.app import create_app

app = create_app("auth")
