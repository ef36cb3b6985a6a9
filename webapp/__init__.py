"""Chat bot web application: auth, chat and admin services.

The app factory is :func:`webapp.app.create_app`; this package imports nothing, so that
``import webapp.bot`` (which must not pull in Flask) stays light.
"""

__version__ = "0.1.0"
