"""WSGI entry point of the admin service: ``gunicorn webapp.wsgi.admin:app``."""

from webapp.wsgi import service_app

app = service_app(__name__)
