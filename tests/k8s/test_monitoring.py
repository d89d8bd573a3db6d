"""components/monitoring: the PodMonitors scrape web and ws as compose's Prometheus does, and the
PrometheusRule carries exactly the rule groups of monitoring/alerts.yml."""

import re
import subprocess

import pytest
import yaml

from tests.k8s import manifests
from tests.k8s.test_network_policy import allowed

ROOT = manifests.ROOT
COMPONENT = ROOT / "k8s/components/monitoring"
ALERTS = yaml.safe_load((ROOT / "monitoring/alerts.yml").read_text())
PROMETHEUS = yaml.safe_load((ROOT / "monitoring/prometheus.yml").read_text())
# compose's jobs for the chat service: {job: port}, from monitoring/prometheus.yml.
JOBS = {
    job["job_name"]: sd["port"]
    for job in PROMETHEUS["scrape_configs"]
    for sd in job.get("dns_sd_configs", [])
}
RENDERS = ("production", "production-loadbalancer", "production-cert-manager")


def test_compose_jobs_are_read():
    """The compose scrape jobs are found (no vacuous pass): web on 8081, ws on 8000."""
    assert JOBS == {"web": 8081, "ws": 8000}
    assert len([r for g in ALERTS["groups"] for r in g["rules"] if "alert" in r]) >= 6


def test_committed_rule_has_the_groups_of_alerts_yml():
    """The committed prometheusrule.yaml holds monitoring/alerts.yml's groups, nothing more or
    less: run k8s/components/monitoring/make-prometheusrule after changing alerts.yml."""
    rule = yaml.safe_load((COMPONENT / "prometheusrule.yaml").read_text())
    assert rule["kind"] == "PrometheusRule"
    assert rule["spec"] == {"groups": ALERTS["groups"]}, (
        "prometheusrule.yaml differs from monitoring/alerts.yml:"
        " run k8s/components/monitoring/make-prometheusrule"
    )


def test_committed_rule_is_the_scripts_output(tmp_path):
    """make-prometheusrule makes the committed file byte for byte (nobody edited it by hand)."""
    out = tmp_path / "prometheusrule.yaml"
    result = subprocess.run(
        [str(COMPONENT / "make-prometheusrule"), str(out)],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert out.read_text() == (COMPONENT / "prometheusrule.yaml").read_text(), (
        "run k8s/components/monitoring/make-prometheusrule and commit its output"
    )


@pytest.mark.parametrize("render", RENDERS)
def test_rendered_rule_is_alerts_yml(rendered, render):
    """After kustomize (namespace, labels), the PrometheusRule's groups are still alerts.yml's."""
    (rule,) = manifests.find(rendered[render], "PrometheusRule")
    assert rule["spec"]["groups"] == ALERTS["groups"]


def pod_monitors(docs):
    """{job name: (PodMonitor, workload it selects)}, checking each selects exactly one."""
    found = {}
    for monitor in manifests.find(docs, "PodMonitor"):
        selected = [
            w
            for w in manifests.workloads(docs)
            if manifests.selects(
                monitor["spec"]["selector"], manifests.pod_template(w)["metadata"]["labels"]
            )
        ]
        assert len(selected) == 1, f"PodMonitor {monitor['metadata']['name']} selects {selected}"
        (workload,) = selected
        assert monitor["metadata"]["namespace"] == workload["metadata"]["namespace"]
        assert "namespaceSelector" not in monitor["spec"]  # its own namespace only
        labels = workload["spec"]["template"]["metadata"]["labels"]
        job = labels[monitor["spec"]["jobLabel"]]
        assert job not in found
        found[job] = monitor, workload
    return found


@pytest.mark.parametrize("render", RENDERS)
def test_pod_monitors_scrape_compose_jobs(rendered, render):
    """One PodMonitor per compose job (web, ws): it selects that Deployment's pods, its job label
    is the job's name, and its endpoint names a container port with compose's port number."""
    monitors = pod_monitors(rendered[render])
    assert set(monitors) == set(JOBS)
    for job, (monitor, workload) in monitors.items():
        assert workload["kind"] == "Deployment" and workload["metadata"]["name"] == job
        (endpoint,) = monitor["spec"]["podMetricsEndpoints"]
        assert endpoint["path"] == "/metrics"
        assert (
            manifests.port_number(manifests.main_container(workload), endpoint["port"]) == JOBS[job]
        )


@pytest.mark.parametrize("render", RENDERS)
def test_scrape_timing_is_compose(rendered, render):
    """Interval and timeout are compose's (monitoring/prometheus.yml): the alerts' `for` are
    tuned to them."""
    timing = PROMETHEUS["global"]
    for monitor, _ in pod_monitors(rendered[render]).values():
        for endpoint in monitor["spec"]["podMetricsEndpoints"]:
            assert endpoint["interval"] == timing["scrape_interval"]
            assert endpoint["scrapeTimeout"] == timing["scrape_timeout"]


@pytest.mark.parametrize("render", ["production", "production-cert-manager"])
def test_prometheus_may_scrape(rendered, render):
    """The NetworkPolicies let Prometheus (namespace `monitoring`) reach each scraped port."""
    docs = rendered[render]
    for job, (_, workload) in pod_monitors(docs).items():
        assert allowed(docs, "prometheus", workload["metadata"]["name"], JOBS[job])


def test_alerts_use_only_scraped_jobs():
    """Every job an alert names is a job the PodMonitors produce (a typo would never fire)."""
    exprs = [r["expr"] for g in ALERTS["groups"] for r in g["rules"]]
    named = {job for expr in exprs for job in re.findall(r'job="([^"]+)"', expr)}
    assert named and named <= set(JOBS)


def test_only_production_has_monitoring(rendered):
    """Production pages; staging does not (no PodMonitors, no rules)."""
    assert manifests.find(rendered["production"], "PrometheusRule")
    assert not [
        d for d in rendered["staging"] if d["apiVersion"].startswith("monitoring.coreos.com/")
    ]
