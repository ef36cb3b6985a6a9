"""Health blueprint: liveness and readiness probes, registered on every service."""

from webapp.health.routes import bp

__all__ = ["bp"]
