"""Prometheus configuration and alerts: promtool accepts them, and every alert is unit-tested.

Lint tier: no Docker, about two seconds. promtool is Debian's (package `prometheus`, installed by
scripts/install-deps), the 2.x the offline stand-in runs; monitoring/ stays valid for 3.x too
(docs/monitoring.md). The compose and nginx checks below keep the scrape targets in step with the
ports and paths the stack really serves.
"""

import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from chatsite.config import DECLARED
from tests.monitoring.promql import exported_samples, metric_names

ROOT = Path(__file__).resolve().parents[2]
MONITORING = ROOT / "monitoring"
PROMETHEUS_METRICS = {"up"}  # written by Prometheus itself for every target


def promtool(*args):
    path = shutil.which("promtool")
    assert path, "expected promtool on PATH (apt-get install -y prometheus), found none"
    result = subprocess.run(
        [path, *args], cwd=MONITORING, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, f"promtool {' '.join(args)}:\n{result.stdout}{result.stderr}"
    return result.stdout + result.stderr


def load(path):
    return yaml.safe_load(path.read_text())


def alert_rules():
    groups = load(MONITORING / "alerts.yml")["groups"]
    return [rule for group in groups for rule in group["rules"] if "alert" in rule]


def compose_services(name):
    return load(ROOT / name)["services"]


def test_promtool_check_rules():
    """`promtool check rules` accepts monitoring/alerts.yml."""
    out = promtool("check", "rules", "alerts.yml")
    assert f"SUCCESS: {len(alert_rules())} rules found" in out, out


def test_promtool_check_config():
    """`promtool check config` accepts monitoring/prometheus.yml, with its rule file."""
    out = promtool("check", "config", "prometheus.yml")
    assert "SUCCESS: 1 rule files found" in out, out


def test_promtool_test_rules():
    """`promtool test rules alerts.test.yml`: every alert fires, and stays silent, as shown."""
    out = promtool("test", "rules", "alerts.test.yml")
    assert "SUCCESS" in out, out


def test_every_alert_is_tested_firing_and_not_firing():
    """Each alert in alerts.yml has a test case expecting it and one expecting silence."""
    cases = [
        case
        for test in load(MONITORING / "alerts.test.yml")["tests"]
        for case in test.get("alert_rule_test", [])
    ]
    missing = []
    for rule in alert_rules():
        name = rule["alert"]
        outcomes = {bool(c.get("exp_alerts")) for c in cases if c["alertname"] == name}
        if outcomes != {True, False}:
            missing.append(f"{name}: {'fires' if True in outcomes else 'no firing case'}, "
                           f"{'silent' if False in outcomes else 'no silent case'}")  # fmt: skip
    assert not missing, f"expected a firing and a silent test case per alert, found {missing}"


@pytest.mark.parametrize("rule", alert_rules(), ids=lambda r: r["alert"])
def test_alert_has_severity_summary_description_and_runbook(rule):
    """severity label; summary, description and a docs/operations.md anchor as runbook_url."""
    assert rule["labels"]["severity"] in {"critical", "warning"}, rule["labels"]
    annotations = rule["annotations"]
    assert annotations["summary"].strip() and annotations["description"].strip()
    assert re.fullmatch(r"docs/operations\.md#[a-z0-9-]+", annotations["runbook_url"]), (
        f"expected runbook_url docs/operations.md#<anchor>, found {annotations['runbook_url']!r}"
    )


@pytest.mark.parametrize("rule", alert_rules(), ids=lambda r: r["alert"])
def test_alert_reads_only_metrics_the_service_exports(rule):
    """Every metric an alert reads is one services/chat/chat/metrics.py exports (or `up`)."""
    unknown = metric_names(rule["expr"]) - exported_samples() - PROMETHEUS_METRICS
    assert not unknown, f"expected only exported metrics in {rule['alert']}, found {unknown}"


def test_scrape_jobs_find_web_and_ws_replicas_on_their_metrics_ports():
    """web and ws are found by Docker DNS (type A, the compose service name) on the port their
    compose healthcheck probes, which also serves /metrics (web :8081, ws :8000)."""
    jobs = {j["job_name"]: j for j in load(MONITORING / "prometheus.yml")["scrape_configs"]}
    services = compose_services("compose.yaml")
    for name in ("web", "ws"):
        probe = services[name]["healthcheck"]["test"]  # ["CMD", "probe", PORT, "/readyz"]
        (sd,) = jobs[name]["dns_sd_configs"]
        assert (sd["names"], sd["type"], sd["port"]) == ([name], "A", int(probe[2])), (
            f"expected job {name} to resolve {name!r} (A) on port {probe[2]}, found {sd}"
        )
        assert jobs[name].get("metrics_path", "/metrics") == "/metrics"


def test_overlay_runs_prometheus_hardened_and_reachable():
    """compose.monitoring.yaml: read-only config and rules, loopback port, hardening, healthcheck,
    and a network shared with web, ws and nginx."""
    base = compose_services("compose.yaml")
    overlay = compose_services("compose.monitoring.yaml")
    prometheus = overlay["prometheus"]
    assert prometheus["image"] == "${PROMETHEUS_IMAGE:-prom/prometheus:v3.5.0}"
    assert "./monitoring:/etc/prometheus:ro" in prometheus["volumes"]
    assert prometheus["ports"] == ["127.0.0.1:${PROMETHEUS_PORT:-9090}:9090"]
    assert "http://127.0.0.1:9090/-/ready" in prometheus["healthcheck"]["test"]
    for name in ("prometheus", "nginx-exporter"):
        service = overlay[name]
        assert service["read_only"] is True and service["cap_drop"] == ["ALL"], name
        assert "no-new-privileges:true" in service["security_opt"], name
        assert service["deploy"]["resources"]["limits"]["memory"], name
    for target in ("web", "ws", "nginx"):
        assert set(prometheus["networks"]) & set(base[target]["networks"]), (
            f"expected prometheus on a network with {target}, found {prometheus['networks']}"
        )
    assert set(overlay["nginx-exporter"]["networks"]) & set(base["nginx"]["networks"])


def test_nginx_exporter_reads_the_stub_status_location():
    """The exporter's scrape URI is a `location = PATH { stub_status; }` of nginx's internal
    listener (server-status.conf, NGINX_STATUS_PORT), which compose does not publish; no other
    nginx file has it, so the public ports do not serve the counters."""
    command = compose_services("compose.monitoring.yaml")["nginx-exporter"]["command"]
    (uri,) = [a.split("=", 1)[1] for a in command if a.startswith("--nginx.scrape-uri=")]
    match = re.fullmatch(r"http://nginx:(\d+)(/[\w-]+)", uri.split()[0])
    status_port = DECLARED["NGINX_STATUS_PORT"].default
    assert match and int(match[1]) == status_port, f"expected :{status_port}, found {uri}"
    location = re.compile(r"location = " + re.escape(match[2]) + r" \{([^}]*)\}")
    found = {
        conf.name
        for conf in sorted((ROOT / "nginx/conf").iterdir())
        for block in location.findall(conf.read_text())
        if "stub_status;" in block
    }
    assert found == {"server-status.conf.template"}, f"expected stub_status there only: {found}"
    published = compose_services("compose.yaml")["nginx"]["ports"]
    assert not [p for p in published if str(p).endswith(f":{status_port}")], published
