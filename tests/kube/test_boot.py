"""Both overlays boot from their rendered manifests and pass the shared functional check.

Each test renders an overlay, runs every Deployment, StatefulSet and Job pod template (and the
CloudNativePG stand-in) as written on the Docker engine (tests/kube/cluster.py), gated by the
probes, then runs tests/functional.py's check_chat through the nginx pods, reached as the
Gateway reaches them (tests/kube/gateway.py: Host and X-Forwarded-Proto from the rendered
Gateway and HTTPRoute). k8s/README.md, "What the smoke boot proves and what it does not".
"""

import asyncio
import time

import pytest

from tests.functional import check_chat, http_get
from tests.k8s import manifests
from tests.kube.cluster import BootError
from tests.kube.gateway import Gateway, route_of

BOOT_BUDGET = 180  # seconds per overlay, images cached (the bound)


def metric(cluster, pod, container, name, port):
    """A gauge from a pod's /metrics, read inside it (nginx does not expose /metrics)."""
    code = (
        "import urllib.request as u;"
        f"print(u.urlopen('http://127.0.0.1:{port}/metrics', timeout=5).read().decode())"
    )
    for line in cluster.exec(pod, container, "python", "-c", code).splitlines():
        if line.startswith(name + " ") or line.startswith(name + "{"):
            return float(line.rsplit(" ", 1)[1])
    raise AssertionError(f"expected {name} in {pod}'s /metrics, found none")


async def chat_through_gateway(cluster, clients, while_connected=None):
    """check_chat through the Gateway stand-in; then HTTPS semantics: the page said to come
    over HTTPS carries Django's HSTS header, the same page said to come over plain HTTP is
    redirected to https:// (nginx passes X-Forwarded-Proto on, Django insists on HTTPS)."""
    host, proto, rules = route_of(cluster.docs)
    async with Gateway(host, proto, rules, cluster.endpoints) as gateway:
        result = await check_chat(
            gateway.base_url,
            clients=clients,
            origin=f"{proto}://{host}",
            while_connected=while_connected,
        )
        page = await asyncio.to_thread(http_get, gateway.base_url + "/chat/")
    assert page.status == 200 and page.header("Strict-Transport-Security"), (
        f"expected 200 with Strict-Transport-Security for a request forwarded as {proto}, found "
        f"{page.status} {dict(page.headers)}"
    )
    async with Gateway(host, "http", rules, cluster.endpoints) as plain:
        page = await asyncio.to_thread(http_get, plain.base_url + "/chat/")
    assert page.status == 301 and page.header("Location") == [f"https://{host}/chat/"], (
        f"expected a redirect to https://{host}/chat/ for a request forwarded as http, found "
        f"{page.status} {page.header('Location')}"
    )
    return result, gateway, (host, proto)


def boot_and_check(boot, tree, overlay, say, clients, extra=None):
    started = time.monotonic()
    with boot(tree / "k8s/overlays" / overlay, overlay) as cluster:
        boot_time = time.monotonic() - started
        cluster.check_liveness()
        ws_pods = [r.pod.name for r in cluster.pods_of("ws")]

        def spread():
            return {p: metric(cluster, p, "ws", "chat_ws_connections", 8000) for p in ws_pods}

        result, gateway, (host, proto) = asyncio.run(chat_through_gateway(cluster, clients, spread))
        if extra:
            extra(cluster)
        restarts = cluster.restarts()
        phases = ", ".join(f"{k} {v:.1f} s" for k, v in cluster.timings.items())
        say(
            f"kube {overlay}: booted in {boot_time:.1f} s ({phases}); check_chat through the "
            f"Gateway stand-in (Host {host}, X-Forwarded-Proto {proto}): {result['timings']}; "
            f"sockets per ws pod {result['while_connected']}; nginx pods used "
            f"{sorted(gateway.backends_used.values())}; restarts {restarts or 'none'}"
        )
    assert all(n >= 1 for n in result["while_connected"].values()), (
        f"expected the sockets spread over every ws pod, found {result['while_connected']}"
    )
    assert not restarts, f"expected a boot without container restarts, found {restarts}"
    assert boot_time < BOOT_BUDGET, (
        f"expected {overlay} to boot within {BOOT_BUDGET} s, found {boot_time:.1f} s"
    )
    return cluster, gateway


@pytest.mark.timeout(600)
def test_staging_boots_and_chats(boot, tree, say):
    """staging: one pod of each, Redis and Postgres as in compose; the page and a broadcast
    between 4 sockets through the nginx pod, as the Gateway would send them."""
    boot_and_check(boot, tree, "staging", say, clients=4)


def sentinels_agree(cluster):
    """Every Sentinel names redis-0.redis-headless as the primary (by its stable DNS name, as
    announced) and knows both replicas: the StatefulSet's names resolve and the members meet."""
    for running in cluster.pods_of("redis"):
        pod = running.pod.name
        primary = cluster.exec(
            pod, "sentinel", "redis-cli", "-p", "26379", "--no-auth-warning",
            "SENTINEL", "get-master-addr-by-name", "chat",
        ).split()  # fmt: skip
        assert primary == ["redis-0.redis-headless", "6379"], (
            f"expected {pod}'s Sentinel to name redis-0.redis-headless:6379, found {primary}"
        )
        lines = cluster.exec(
            pod, "sentinel", "redis-cli", "-p", "26379", "--no-auth-warning",
            "SENTINEL", "replicas", "chat",
        ).split()  # fmt: skip
        names = sorted(lines[i + 1] for i, word in enumerate(lines[:-1]) if word == "name")
        assert names == ["redis-1.redis-headless:6379", "redis-2.redis-headless:6379"], (
            f"expected {pod}'s Sentinel to know both replicas by name, found {names}"
        )


@pytest.mark.timeout(600)
def test_production_boots_and_chats(boot, tree, say):
    """production: 2 nginx, 2 web, 2 ws (the autoscalers' minimum), Redis with 3 Sentinels, the
    CloudNativePG stand-in; 12 sockets spread over both ws pods through both nginx pods (nginx
    starts each lookup's address list at random: all 12 on one pod has odds of 1 in 2000)."""
    _, gateway = boot_and_check(boot, tree, "production", say, clients=12, extra=sentinels_agree)
    assert len(gateway.backends_used) == 2, (
        f"expected the Gateway stand-in to use both nginx pods, found {gateway.backends_used}"
    )


# Deliberate breaks, each made in a copy of the manifests: the boot must fail naming the pod and
# the cause. (file, text as written, broken text, what the failure message must say)
DRIFTS = {
    "wrong-command": (
        "k8s/base/migrate.yaml",
        "args: [start-migrate]",
        "args: [start-migrations]",
        ["pod migrate-", "(Job migrate)", "could not start", "start-migrations"],
    ),
    "removed-variable": (
        "k8s/base/nginx.yaml",
        "            - name: POD_NAMESPACE\n"
        "              valueFrom:\n"
        "                fieldRef: {fieldPath: metadata.namespace}\n",
        "",
        ["pod nginx-", "(Deployment nginx)", "$(POD_NAMESPACE) in env WEB_UPSTREAM"],
    ),
}


@pytest.mark.timeout(600)
@pytest.mark.parametrize("case", DRIFTS)
def test_drift_fails_the_boot_naming_it(boot, tmp_path, say, case):
    """A manifest broken in a way schema validation cannot see fails the smoke boot, with a
    message that names the pod, the cause and the pod's last log lines."""
    path, written, broken, expected = DRIFTS[case]
    copy = manifests.make_tree(tmp_path)
    text = (copy / path).read_text()
    assert written in text, f"expected {path} to contain {written!r} (update DRIFTS)"
    (copy / path).write_text(text.replace(written, broken, 1))
    started = time.monotonic()
    with (
        pytest.raises(BootError) as failed,
        boot(copy / "k8s/overlays/staging", f"drift-{case}", print_notes=False),
    ):
        pass
    message = str(failed.value)
    say(f"kube drift {case}: failed after {time.monotonic() - started:.1f} s with:\n{message}")
    missing = [e for e in expected if e not in message]
    assert not missing, f"expected the failure to say {missing}, found:\n{message}"
