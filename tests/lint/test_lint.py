"""Every shell script, Dockerfile, YAML and compose file passes its linter (the lint tier)."""

import json
import os
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
VENV_BIN = ROOT / ".venv" / "bin"
COMPOSE = ROOT / ".venv/lib/python3.11/site-packages/compose/docker-compose"


def repo_files():
    """Files git would commit (tracked or new, not ignored)."""
    out = subprocess.run(
        ["git", "ls-files", "--cached", "--others", "--exclude-standard"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return sorted(p for p in (ROOT / line for line in out.splitlines()) if p.is_file())


def shell_scripts():
    scripts = []
    for path in repo_files():
        with path.open("rb") as f:
            first = f.readline()
        if first.startswith(b"#!") and (b"bash" in first or first.rstrip().endswith(b"/sh")):
            scripts.append(path)
    return scripts


def tool(name):
    path = VENV_BIN / name
    assert path.exists(), f"expected {path} (scripts/install-deps installs it), found nothing"
    return str(path)


def run(cmd, **kwargs):
    result = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=120, **kwargs)
    assert result.returncode == 0, f"{' '.join(map(str, cmd))}\n{result.stdout}{result.stderr}"
    return result


def test_there_is_something_to_lint():
    """The file discovery below finds the scripts and Dockerfiles we ship (no vacuous pass)."""
    names = {p.relative_to(ROOT).as_posix() for p in shell_scripts()}
    assert {"scripts/up", "services/chat/bin/start-web", "nginx/start-nginx"} <= names
    dockerfiles = {p.relative_to(ROOT).as_posix() for p in repo_files() if p.name == "Dockerfile"}
    assert {"services/chat/Dockerfile", "nginx/Dockerfile"} <= dockerfiles


@pytest.mark.parametrize("script", shell_scripts(), ids=lambda p: p.relative_to(ROOT).as_posix())
def test_shellcheck(script):
    """shellcheck finds nothing (warnings included) in each shell script."""
    run([tool("shellcheck"), "--external-sources", "--source-path=SCRIPTDIR", str(script)])


@pytest.mark.parametrize(
    "dockerfile",
    [p for p in repo_files() if p.name == "Dockerfile"],
    ids=lambda p: p.relative_to(ROOT).as_posix(),
)
def test_hadolint(dockerfile):
    """hadolint finds nothing at warning level or above in each Dockerfile."""
    run([tool("hadolint"), "--failure-threshold", "warning", str(dockerfile)])


def test_yamllint():
    """yamllint (config .yamllint.yaml) is clean on every YAML file."""
    yamls = [str(p) for p in repo_files() if p.suffix in {".yaml", ".yml"}]
    assert any(y.endswith("compose.yaml") for y in yamls)
    run([tool("yamllint"), "--strict", "-c", str(ROOT / ".yamllint.yaml"), *yamls])


PUBLISHED = {"nginx", "prometheus"}  # the services with published ports


@pytest.mark.parametrize(
    "compose_file",
    [p for p in repo_files() if p.name.startswith("compose") and p.suffix == ".yaml"],
    ids=lambda p: p.name,
)
def test_docker_compose_config(compose_file, tmp_path):
    """`docker compose config` accepts each compose file with .env.example's variables."""
    env_file = tmp_path / ".env"
    example = (ROOT / ".env.example").read_text()
    env_file.write_text(example.replace("!!!SET ", "x").replace("!!!", ""))
    files = ["-f", str(ROOT / "compose.yaml")]
    if compose_file.name != "compose.yaml":
        files += ["-f", str(compose_file)]
    env = {k: v for k, v in os.environ.items() if k not in {"DOCKER_HOST"}}
    run([str(COMPOSE), "--env-file", str(env_file), *files, "config", "--quiet"], env=env)

    # Only the published services reach the internet: every other service is on internal
    # networks only (no route out; tests/stack/test_exposure.py checks it in a live stack).
    config = json.loads(
        run(
            [str(COMPOSE), "--env-file", str(env_file), *files, "config", "--format", "json"],
            env=env,
        ).stdout
    )
    internal = {name for name, net in config["networks"].items() if net.get("internal")}
    outside = {
        name: sorted(set(service.get("networks", {"default": None})) - internal)
        for name, service in config["services"].items()
    }
    assert {name for name, nets in outside.items() if nets} <= PUBLISHED, (
        f"expected only {sorted(PUBLISHED)} on a network with a route out; found {outside}"
    )
    for name, service in config["services"].items():
        assert not service.get("ports") or name in PUBLISHED, f"expected {name} to publish no port"
