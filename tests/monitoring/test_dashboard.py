"""The Grafana dashboard: importable JSON whose queries read only what the chat service exports.

Lint tier, no Grafana needed: the JSON is checked for the import input `DS_PROMETHEUS`, every
query's metric names are checked against services/chat/chat/metrics.py, and every query is parsed
by promtool (as a recording rule), so a typo or a renamed metric fails here, not on a blank panel.
"""

import json
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from tests.monitoring.promql import exported, exported_samples, metric_names

ROOT = Path(__file__).resolve().parents[2]
DASHBOARD = ROOT / "monitoring" / "grafana" / "chat-dashboard.json"
DATASOURCE = {"type": "prometheus", "uid": "${DS_PROMETHEUS}"}
# What the dashboard must show (docs/monitoring.md), by the metric family it reads.
REQUIRED = {
    "chat_ws_connections",  # open connections per replica
    "chat_deliveries",  # deliveries/s
    "chat_messages_accepted",  # accepted ...
    "chat_messages_rejected",  # ... and rejected per reason
    "chat_delivery_latency_seconds",  # p50/p99
    "chat_channel_layer_send_seconds",  # channel-layer send latency
    "chat_dependency_up",  # dependencies up
}


def dashboard():
    return json.loads(DASHBOARD.read_text())


def panels(items=None):
    """Every panel, rows' collapsed panels included."""
    for panel in dashboard()["panels"] if items is None else items:
        yield panel
        yield from panels(panel.get("panels", []))


def queries():
    return [(p["title"], t) for p in panels() for t in p.get("targets", [])]


def test_dashboard_is_an_importable_grafana_dashboard():
    """Valid JSON with a title, a uid, unique panel ids and the DS_PROMETHEUS datasource input."""
    board = dashboard()
    assert board["title"] and board["uid"] and board["schemaVersion"] >= 36
    (source,) = board["__inputs"]
    assert (source["name"], source["type"], source["pluginId"]) == (
        "DS_PROMETHEUS", "datasource", "prometheus",
    )  # fmt: skip
    ids = [p["id"] for p in panels()]
    assert len(ids) == len(set(ids)), f"expected unique panel ids, found {ids}"
    assert all({"x", "y", "w", "h"} <= set(p["gridPos"]) for p in panels())


def test_every_panel_and_query_uses_the_datasource_input():
    """Every panel and query names `${DS_PROMETHEUS}`, so the import asks for one datasource."""
    for panel in panels():
        if panel["type"] == "row":
            continue
        assert panel["datasource"] == DATASOURCE, panel["title"]
        assert panel["targets"], f"expected queries in panel {panel['title']!r}"
    for title, target in queries():
        assert target["datasource"] == DATASOURCE, title
        assert target["expr"].strip(), title


@pytest.mark.parametrize(
    ("title", "target"), queries(), ids=[f"{title} {t['refId']}" for title, t in queries()]
)
def test_query_reads_only_metrics_the_service_exports(title, target):
    """Each query's metric names are samples of metrics.py's metrics (no typo, no stale name)."""
    names = metric_names(target["expr"])
    assert names, f"expected a metric in {target['expr']!r}"
    unknown = names - exported_samples()
    assert not unknown, f"panel {title!r} reads {unknown}, which the chat service does not export"


def test_dashboard_shows_the_required_metrics():
    """Connections per replica, deliveries, accepted/rejected, both latencies, dependencies."""
    used = {
        family
        for _, target in queries()
        for family in exported()
        if any(name.startswith(family) for name in metric_names(target["expr"]))
    }
    assert REQUIRED <= used, f"expected panels for {sorted(REQUIRED - used)}"


def test_promtool_parses_every_query(tmp_path):
    """Each query, with Grafana's $__rate_interval as 1m, is valid PromQL for promtool."""
    promtool = shutil.which("promtool")
    assert promtool, "expected promtool on PATH (apt-get install -y prometheus), found none"
    rules = [
        {"record": f"dashboard:query_{i}", "expr": t["expr"].replace("$__rate_interval", "1m")}
        for i, (_, t) in enumerate(queries())
    ]
    path = tmp_path / "dashboard-queries.yml"
    path.write_text(yaml.safe_dump({"groups": [{"name": "dashboard", "rules": rules}]}))
    result = subprocess.run(
        [promtool, "check", "rules", str(path)], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stdout + result.stderr
