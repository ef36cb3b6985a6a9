"""WSGI entry points, one per service: ``gunicorn webapp.wsgi.<service>:app``."""
