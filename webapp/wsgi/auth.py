"""WSGI entry point of the auth service: ``gunicorn webapp.wsgi.auth:app``."""

from webapp.wsgi import service_app

app = service_app(__name__)
