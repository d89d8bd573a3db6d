"""docs/monitoring.md describes every metric the service exports and every alert it ships."""

import re
from pathlib import Path

import yaml

from tests.monitoring.promql import exported

ROOT = Path(__file__).resolve().parents[2]
DOC = (ROOT / "docs" / "monitoring.md").read_text()


def table_names(section):
    """Backquoted names in the first column of the tables under `## section`."""
    body = DOC.split(f"\n## {section}\n", 1)[1].split("\n## ", 1)[0]
    return set(re.findall(r"^\| `([\w]+)` \|", body, re.M))


def test_every_exported_metric_is_in_the_metrics_table():
    """One row per metric of services/chat/chat/metrics.py, under its exposed name."""
    names = {name + ("_total" if kind == "counter" else "") for name, kind in exported().items()}
    documented = table_names("Metrics")
    assert names == documented, (
        f"expected the metrics table to list exactly {sorted(names)}; "
        f"missing {sorted(names - documented)}, unknown {sorted(documented - names)}"
    )


def test_every_alert_is_in_the_alerts_table():
    """One row per alert of monitoring/alerts.yml, with its severity."""
    rules = yaml.safe_load((ROOT / "monitoring" / "alerts.yml").read_text())["groups"]
    alerts = {r["alert"]: r["labels"]["severity"] for g in rules for r in g["rules"]}
    assert set(alerts) == table_names("Alerts")
    for name, severity in alerts.items():
        assert f"| `{name}` | {severity} |" in DOC, f"expected {name}'s row to say {severity}"
