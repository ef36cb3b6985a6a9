"""The shipped Grafana dashboard and alert rules query metrics that really exist."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import yaml
from prometheus_client import REGISTRY

import webapp.metrics  # noqa: F401  (registers the app's metrics)

MONITORING = Path(__file__).resolve().parents[2] / "monitoring"
# Metrics that come from prometheus-postgres-exporter, not from the app.
EXPORTER_METRICS = {"pg_stat_database_numbackends", "pg_settings_max_connections"}
RECORDED_NAME = re.compile(r"\bchatbot:[a-z0-9_:]+")
METRIC_NAME = re.compile(
    r"\b([a-z_][a-z0-9_]*(?:_total|_bucket|_seconds|_count|_sum))\b|\b(pg_[a-z_]+)\b"
)


def _app_metric_names() -> set[str]:
    names = set()
    for family in REGISTRY.collect():
        names.add(family.name)
        names.update(sample.name for sample in family.samples)
    # Counters are exposed with a _total suffix, histograms with _bucket/_count/_sum.
    for name in list(names):
        names.update({f"{name}_total", f"{name}_bucket", f"{name}_count", f"{name}_sum"})
    return names


def _metrics_in(expr: str) -> set[str]:
    return {a or b for a, b in METRIC_NAME.findall(expr)}


def _dashboard_exprs() -> list[str]:
    dashboard = json.loads((MONITORING / "grafana" / "chatbot-dashboard.json").read_text())
    return [target["expr"] for panel in dashboard["panels"] for target in panel["targets"]]


def _rule_exprs() -> list[str]:
    rules = yaml.safe_load((MONITORING / "prometheus" / "chatbot.rules.yml").read_text())
    return [rule["expr"] for group in rules["groups"] for rule in group["rules"]]


def _recorded_names() -> set[str]:
    rules = yaml.safe_load((MONITORING / "prometheus" / "chatbot.rules.yml").read_text())
    return {
        rule["record"] for group in rules["groups"] for rule in group["rules"] if "record" in rule
    }


@pytest.mark.parametrize("expr", _dashboard_exprs() + _rule_exprs())
def test_queries_use_exported_metrics(expr: str):
    known = _app_metric_names() | EXPORTER_METRICS
    used = _metrics_in(expr)
    recorded = set(RECORDED_NAME.findall(expr))
    assert used or recorded, f"no metric recognised in {expr!r}"
    unknown = {name for name in used if name not in known}
    assert not unknown, f"{expr!r} uses metrics nobody exports: {sorted(unknown)}"
    undefined = recorded - _recorded_names()
    assert not undefined, f"{expr!r} uses recording rules the file does not define: {undefined}"


def test_required_alerts_are_shipped():
    rules = yaml.safe_load((MONITORING / "prometheus" / "chatbot.rules.yml").read_text())
    alerts = {
        rule["alert"] for group in rules["groups"] for rule in group["rules"] if "alert" in rule
    }
    assert {
        "HighErrorRate",
        "HighResponseTime",
        "DatabaseConnectionsHigh",
        "ModelProviderErrors",
        "FallbackRateHigh",
    } <= alerts


def test_dashboard_panels_have_unique_ids_and_queries():
    dashboard = json.loads((MONITORING / "grafana" / "chatbot-dashboard.json").read_text())
    ids = [panel["id"] for panel in dashboard["panels"]]
    assert ids, "the dashboard has no panels"  # else the checks below would hold vacuously
    assert len(ids) == len(set(ids))
    assert all(panel["targets"] for panel in dashboard["panels"])
