"""WSGI entry point of the admin service: ``gunicorn webapp.wsgi.admin:app``."""

from webapp.app import create_app

app = create_app("admin")
