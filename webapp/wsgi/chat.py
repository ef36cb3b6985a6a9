"""WSGI entry point of the chat service: ``gunicorn webapp.wsgi.chat:app``."""

from webapp.app import create_app

app = create_app("chat")
