"""Flask extensions, created unbound at import time and bound to an app in ``create_app``."""

from __future__ import annotations

from pathlib import Path

from flask_jwt_extended import JWTManager
from flask_migrate import Migrate
from flask_sqlalchemy import SQLAlchemy

from webapp.models import Base

__all__ = ["MIGRATIONS_DIR", "db", "jwt", "migrate"]

# The migrations ship inside the package so that `chatbot db upgrade` works from an installed
# wheel, whatever the current directory.
MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"

# expire_on_commit=False: objects stay readable after commit, so serialising a freshly stored
# row does not cost a second SELECT, and a long SSE stream does not re-open a transaction (and
# hold a pooled connection) just to read attributes it already has.
db = SQLAlchemy(model_class=Base, session_options={"expire_on_commit": False})
# compare_server_default keeps `chatbot db migrate` honest about defaults such as now().
migrate = Migrate(directory=str(MIGRATIONS_DIR), compare_server_default=True)
jwt = JWTManager()
