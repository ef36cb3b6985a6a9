"""WSGI entry point of the chat service: ``gunicorn webapp.wsgi.chat:app``."""

from webapp.wsgi import service_app

app = service_app(__name__)
