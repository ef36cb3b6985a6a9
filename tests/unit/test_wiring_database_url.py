"""The app's DATABASE_URL as playbooks/vars/wiring.yml derives it, per topology.

On the db host itself (the single-host topology, or an app host that is also the db host) the
app connects over loopback without TLS; from any other host it requires TLS. ``sslmode`` is
always spelled out: libpq's default, ``prefer``, negotiates TLS with a server that has it on
(Debian's PostgreSQL does, and the remote app hosts need it), loopback included.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import jinja2
import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
WIRING: dict[str, Any] = yaml.safe_load((ROOT / "playbooks" / "vars" / "wiring.yml").read_text())
ADDRESSES = {"app1": "192.0.2.21", "db1": "192.0.2.31", "all-in-one": "192.0.2.11"}


def _render(name: str, context: dict[str, Any]) -> str:
    env = jinja2.Environment(undefined=jinja2.StrictUndefined, autoescape=False)  # noqa: S701
    return env.from_string(WIRING[name]).render(context).strip()


def database_url(host: str, db_host: str) -> str:
    """Render app_database_url for ``host`` when the db group is ``db_host``."""
    context: dict[str, Any] = {
        "inventory_hostname": host,
        "__chatbot_db_host": db_host,
        "__chatbot_private_addresses": ADDRESSES,
        "__chatbot_db_user": "chatbot",
        "__chatbot_db_name": "chatbot",
        "__chatbot_db_port": 5432,
        "chatbot_db_password": "p@ss word",
    }
    context["__chatbot_db_address"] = _render("__chatbot_db_address", context)
    return _render("app_database_url", context)


@pytest.mark.parametrize(
    ("host", "db_host", "address", "sslmode"),
    [
        ("all-in-one", "all-in-one", "127.0.0.1", "disable"),
        ("db1", "db1", "127.0.0.1", "disable"),
        ("app1", "db1", "192.0.2.31", "require"),
    ],
)
def test_loopback_connections_go_without_tls_and_remote_ones_require_it(
    host, db_host, address, sslmode
):
    url = urlsplit(database_url(host, db_host))
    assert (url.hostname, url.port, url.path) == (address, 5432, "/chatbot")
    assert parse_qs(url.query) == {"sslmode": [sslmode]}


def test_the_password_is_url_encoded():
    url = urlsplit(database_url("app1", "db1"))
    assert url.password == "p%40ss%20word"
