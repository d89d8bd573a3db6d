"""scripts/up's configuration checks (production mode, exposure guard, certificate), run without
an engine: each case either passes `--check` or is refused before anything starts.

DOCKER_HOST points at a socket that does not exist, so a check that failed to refuse would stop
at the engine step with a different message instead of starting a stack.
"""

import os
import re
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE_NAMES = re.findall(r"^([A-Z][A-Z0-9_]*)=", (ROOT / ".env.example").read_text(), re.M)


def up(tmp_path, *args, **settings):
    """scripts/up with its own env file in tmp_path; `settings` override it like compose's env."""
    env = {k: v for k, v in os.environ.items() if k not in EXAMPLE_NAMES}
    env.update(
        ENV_FILE=str(tmp_path / ".env"),
        TLS_DIR=str(tmp_path / "tls"),
        DOCKER_HOST=f"unix://{tmp_path}/no-engine.sock",
        **settings,
    )
    return subprocess.run(
        [str(ROOT / "scripts/up"), *args],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=60,
    )  # fmt: skip


def tls_cert(tmp_path, name="tls"):
    env = {**os.environ, "TLS_DIR": str(tmp_path / name), "ENV_FILE": str(tmp_path / ".env")}
    subprocess.run(
        [str(ROOT / "scripts/tls-cert")], env=env, check=True, capture_output=True, timeout=60
    )


def env_file(tmp_path):
    return dict(
        line.split("=", 1)
        for line in (tmp_path / ".env").read_text().splitlines()
        if re.match(r"^[A-Z][A-Z0-9_]*=", line)
    )


def test_default_env_is_local_plain_http_on_loopback(tmp_path):
    """A fresh .env (the outside contract: http://127.0.0.1:8080) passes as it is."""
    result = up(tmp_path, "--check")
    assert result.returncode == 0, result.stderr
    assert "mode: local, TLS off, HTTP on 127.0.0.1" in result.stdout
    values = env_file(tmp_path)
    assert (values["STACK_MODE"], values["NGINX_TLS"], values["HTTP_BIND"]) == (
        "local",
        "off",
        "127.0.0.1",
    )


@pytest.mark.parametrize("bind", ["0.0.0.0", "192.0.2.10", "::"])
def test_plain_http_beyond_loopback_is_refused(tmp_path, bind):
    """Plain HTTP on a public address stops scripts/up before the engine step, saying how to
    enable TLS or opt out."""
    result = up(tmp_path, HTTP_BIND=bind)
    assert result.returncode == 1
    assert f"found plain HTTP on HTTP_BIND={bind} with NGINX_TLS=off" in result.stderr
    assert "scripts/up --production" in result.stderr
    assert "ALLOW_PLAIN_HTTP=true" in result.stderr
    assert "== engine" not in result.stdout, "the guard must run before anything starts"


@pytest.mark.parametrize("bind", ["127.0.0.1", "::1", "[::1]", "localhost"])
def test_plain_http_on_loopback_passes(tmp_path, bind):
    result = up(tmp_path, "--check", HTTP_BIND=bind)
    assert result.returncode == 0, result.stderr


def test_explicit_opt_out_passes(tmp_path):
    """ALLOW_PLAIN_HTTP=true: TLS ends at a proxy in front; scripts/up says so and goes on."""
    result = up(tmp_path, "--check", HTTP_BIND="0.0.0.0", ALLOW_PLAIN_HTTP="true")
    assert result.returncode == 0, result.stderr
    assert "ALLOW_PLAIN_HTTP=true" in result.stdout


def test_production_without_certificate_is_refused_and_env_untouched(tmp_path):
    """--production names the missing file and leaves .env as it was."""
    assert up(tmp_path, "--check").returncode == 0
    before = (tmp_path / ".env").read_text()
    result = up(tmp_path, "--production", "--check")
    assert result.returncode == 1
    assert f"expected a certificate {tmp_path}/tls/tls.crt" in result.stderr
    assert "scripts/tls-cert" in result.stderr
    assert (tmp_path / ".env").read_text() == before


def test_production_writes_https_only_settings(tmp_path):
    """--production with a certificate records the mode and the TLS settings in .env; later
    runs keep checking them."""
    assert up(tmp_path, "--check").returncode == 0
    tls_cert(tmp_path)
    result = up(tmp_path, "--production", "--check", HTTP_BIND="0.0.0.0")
    assert result.returncode == 0, result.stderr
    values = env_file(tmp_path)
    assert values["STACK_MODE"] == "production"
    assert values["NGINX_TLS"] == "on"
    assert values["DJANGO_SECURE_SSL_REDIRECT"] == values["DJANGO_SECURE_COOKIES"] == "true"
    assert values["DJANGO_HSTS_SECONDS"] == values["NGINX_HSTS_SECONDS"] == "31536000"

    again = up(tmp_path, "--check")
    assert again.returncode == 0 and "mode: production, TLS on" in again.stdout, again.stderr
    undone = up(tmp_path, "--check", NGINX_TLS="off")
    assert undone.returncode == 1
    assert "expected NGINX_TLS=on in production mode" in undone.stderr
    assert "(from the environment)" in undone.stderr


@pytest.mark.parametrize("broken", ["missing key", "other key", "unreadable key", "not PEM"])
def test_tls_refuses_an_unusable_certificate(tmp_path, broken):
    """NGINX_TLS=on checks the pair before starting: present, PEM, matching, readable by nginx."""
    tls_cert(tmp_path)
    key = tmp_path / "tls/tls.key"
    if broken == "missing key":
        key.unlink()
        expected = "expected the private key"
    elif broken == "other key":
        tls_cert(tmp_path, "other")
        key.write_bytes((tmp_path / "other/tls.key").read_bytes())
        expected = "to be the private key of"
    elif broken == "unreadable key":
        if os.geteuid() != 0:
            pytest.skip("needs root to give the key away")
        os.chown(key, 0, 0)
        key.chmod(0o600)
        expected = "readable by nginx (uid 101)"
    else:
        (tmp_path / "tls/tls.crt").write_text("not a certificate\n")
        expected = "expected a PEM certificate"
    result = up(tmp_path, "--check", NGINX_TLS="on")
    assert result.returncode == 1
    assert expected in result.stderr
