"""The smoke-boot tier: each overlay's pods from the rendered manifests, on the Docker engine.

The session first makes sure of the engine and the images, as the stack tier does: scripts/engine,
scripts/airgap-images (the stand-ins for the upstream images; skipped when present) and
`docker compose build` of the chat and nginx images from this checkout (cached layers: seconds).
Overlays are rendered from a temporary copy with throw-away secrets (tests/k8s/manifests.py).
"""

import contextlib
import os
import subprocess
import time
from pathlib import Path

import pytest

from tests.k8s import manifests
from tests.kube.cluster import Cluster

ROOT = Path(__file__).resolve().parents[2]
WORK = ROOT / ".work"


def _run(cmd, timeout, env=None):
    result = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=timeout, env=env)
    assert result.returncode == 0, (
        f"expected `{' '.join(map(str, cmd))}` to succeed, found exit {result.returncode}:\n"
        f"{result.stdout[-3000:]}{result.stderr[-3000:]}"
    )
    return result.stdout


@pytest.fixture(scope="session")
def say(pytestconfig):
    """Print past pytest's capture: the adaptations and timings belong in the CI log."""
    capture = pytestconfig.pluginmanager.getplugin("capturemanager")

    def say(text):
        with capture.global_and_fixture_disabled():
            print(text, flush=True)

    return say


@pytest.fixture(scope="session")
def standins(say):
    """{variable: image} of scripts/airgap-images, with every image the overlays need built."""
    started = time.monotonic()
    _run([ROOT / "scripts/engine"], timeout=300)
    _run([ROOT / "scripts/airgap-images"], timeout=3600)
    pairs = _run([ROOT / "scripts/airgap-images", "--print-env"], timeout=60).split()
    env = dict(pair.split("=", 1) for pair in pairs)
    # compose.yaml's own build of the two product images (chatstack/chat, chatstack/nginx),
    # on the stand-ins; the secrets it insists on are never used by a build.
    build_env = {
        **os.environ,
        **env,
        "DJANGO_SECRET_KEY": "build-only",
        "POSTGRES_PASSWORD": "build-only",
        "REDIS_PASSWORD": "build-only",
    }
    _run(
        ["docker", "compose", "--project-directory", ROOT, "-f", ROOT / "compose.yaml",
         "--env-file", os.devnull, "build", "web", "nginx"],
        timeout=3600, env=build_env,
    )  # fmt: skip
    say(f"\nkube: engine and images ready in {time.monotonic() - started:.1f} s")
    return env


@pytest.fixture(scope="session")
def tree(tmp_path_factory):
    """A copy of k8s/, nginx/ and redis/ with generated secrets.env files."""
    return manifests.make_tree(tmp_path_factory.mktemp("kube-tree"))


@pytest.fixture(scope="session")
def boot(standins, say, tmp_path_factory):
    """boot(overlay_path, name) -> a context manager yielding a booted Cluster. Its adaptations
    are printed; the harness log and the pods' logs go to .work/kube-<name>-harness.txt and
    -logs.txt; everything is removed on exit, after a failure too."""

    @contextlib.contextmanager
    def booted(path, name, print_notes=True):
        lines = []

        def log(text, terminal=True):
            lines.append(text)
            if terminal:
                say(f"kube {name}: {text}")

        docs = manifests.kustomize(path)
        cluster = Cluster(
            docs,
            workdir=tmp_path_factory.mktemp(f"kube-{name}"),
            log=log,
            standins=standins,
            harness_image=standins["PYTHON_IMAGE"],
            name=f"kube-{name}",
        )
        try:
            try:
                cluster.boot()
            finally:
                log("adaptations:", terminal=print_notes)
                for text in cluster.notes:
                    log(f"  - {text}", terminal=print_notes)
            yield cluster
        finally:
            WORK.mkdir(exist_ok=True)
            with contextlib.suppress(Exception):  # logs are a courtesy; teardown must run
                cluster.dump_logs(WORK / f"kube-{name}-logs.txt")
            (WORK / f"kube-{name}-harness.txt").write_text("\n".join(lines) + "\n")
            cluster.teardown()

    return booted
