"""The one list of services is what the WSGI modules, the factory and the settings serve."""

from __future__ import annotations

import runpy
from pathlib import Path

import pytest

from webapp.app import create_app
from webapp.openapi import DOCUMENTED_SERVICES
from webapp.services_list import SERVICE_NAMES, SERVICES, service_named
from webapp.settings import DEFAULT_STATUS_SERVICE_URLS, Settings
from webapp.wsgi import service_app

WSGI_DIR = Path(__file__).resolve().parents[2] / "webapp" / "wsgi"
ENVIRONMENT = {
    # Port 1 on localhost: nothing listens, so an accidental connection fails loudly.
    "DATABASE_URL": "postgresql://user:password@127.0.0.1:1/none",
    "REDIS_URL": "redis://127.0.0.1:1/0",
    "SECRET_KEY": "unit-test-secret-key-" + "x" * 32,
}


def test_names_and_ports_are_unique():
    assert len(set(SERVICE_NAMES)) == len(SERVICES)
    assert len({s.port for s in SERVICES}) == len(SERVICES)


def test_every_wsgi_module_is_a_listed_service():
    modules = {f"webapp.wsgi.{p.stem}" for p in WSGI_DIR.glob("*.py") if p.stem != "__init__"}
    assert modules == {s.wsgi_module for s in SERVICES}


@pytest.mark.parametrize("service", SERVICES, ids=SERVICE_NAMES)
def test_wsgi_module_serves_its_service(service, monkeypatch):
    for name, value in ENVIRONMENT.items():
        monkeypatch.setenv(name, value)
    app = runpy.run_module(service.wsgi_module)["app"]
    assert app.config["SERVICE_NAME"] == service.name
    # Its own API and pages, no other service's.
    prefixes = {
        rule.rule.split("/")[3]
        for rule in app.url_map.iter_rules()
        if rule.rule.startswith("/api/v1/")
    }
    assert service.name in prefixes
    assert not prefixes & (set(SERVICE_NAMES) - {service.name})


def test_a_module_of_no_service_is_refused():
    with pytest.raises(ValueError, match=r"webapp\.wsgi\.billing"):
        service_app("webapp.wsgi.billing")


def test_unknown_name_is_refused():
    with pytest.raises(ValueError, match="unknown service 'billing'"):
        service_named("billing")
    assert service_named("chat").port == 8002


def test_all_serves_every_service():
    app = create_app("all", Settings.from_env(ENVIRONMENT))
    blueprints = set(app.blueprints)
    assert set(SERVICE_NAMES) <= blueprints


def test_status_page_and_openapi_derive_from_the_list():
    assert (
        tuple((s.name, f"http://127.0.0.1:{s.port}") for s in SERVICES)
        == DEFAULT_STATUS_SERVICE_URLS
    )
    assert DOCUMENTED_SERVICES == SERVICE_NAMES
