"""Configuration: production refuses to start without its secrets and passes check --deploy."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

from chatsite.env import Env, SettingError

SERVICE = Path(__file__).resolve().parents[2]
PRODUCTION = {
    "DJANGO_ENV": "production",
    "DJANGO_SECRET_KEY": "k" * 20 + "-production-test-key-with-enough-entropy-1234567890",
    "DJANGO_ALLOWED_HOSTS": "chat.example.com",
    "DATABASE_URL": "postgres://chat:pw@127.0.0.1:1/chat",
    "REDIS_URL": "redis://:pw@127.0.0.1:1/0",
}


def manage(*args, **env):
    clean = {
        k: v for k, v in os.environ.items() if not k.startswith(("DJANGO_", "DATABASE_", "REDIS_"))
    }
    return subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=SERVICE,
        env={**clean, **env},
        capture_output=True,
        text=True,
        timeout=60,
    )


@pytest.mark.parametrize(
    "missing", ["DJANGO_SECRET_KEY", "DJANGO_ALLOWED_HOSTS", "DATABASE_URL", "REDIS_URL"]
)
def test_production_stops_at_boot_naming_the_missing_variable(missing):
    env = {k: v for k, v in PRODUCTION.items() if k != missing}
    result = manage("check", **env)
    assert result.returncode != 0
    assert f"{missing} is required" in result.stderr


def test_renamed_variable_fails_loudly():
    result = manage("check", SECRET_KEY="old-name")
    assert result.returncode != 0
    assert "SECRET_KEY was renamed to DJANGO_SECRET_KEY" in result.stderr


def test_env_example_placeholder_is_refused():
    """A secret still holding .env.example's `!!!SET ...!!!` placeholder stops the process."""
    result = manage("check", **{**PRODUCTION, "DJANGO_SECRET_KEY": "!!!SET DJANGO_SECRET_KEY!!!"})
    assert result.returncode != 0
    assert "DJANGO_SECRET_KEY still holds the .env.example placeholder" in result.stderr


def test_production_settings_pass_check_deploy():
    result = manage("check", "--deploy", "--fail-level", "WARNING", **PRODUCTION)
    assert result.returncode == 0, result.stdout + result.stderr


def test_no_missing_migrations():
    result = manage("makemigrations", "--check", "--dry-run")
    assert result.returncode == 0, result.stdout + result.stderr


def test_development_needs_nothing():
    """The embedded defaults: SQLite and the in-memory channel layer, no variables at all."""
    result = manage(
        "shell",
        "--no-imports",
        "-c",
        "from django.conf import settings as s; "
        "print(s.DATABASES['default']['ENGINE'], s.CHANNEL_LAYERS['default']['BACKEND'])",
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == [
        "django.db.backends.sqlite3",
        "channels.layers.InMemoryChannelLayer",
    ]


@pytest.mark.parametrize(
    ("method", "value", "expected"),
    [
        ("bool", "yes", True),
        ("bool", "0", False),
        ("int", "42", 42),
        ("list", "a, b,,c ", ["a", "b", "c"]),
        ("float", "2.5", 2.5),
    ],
)
def test_typed_reads(method, value, expected):
    assert getattr(Env({"X": value}), method)("X") == expected


@pytest.mark.parametrize(
    ("method", "value", "message"),
    [
        ("bool", "maybe", "X must be true or false, found 'maybe'"),
        ("int", "ten", "X must be a int, found 'ten'"),
    ],
)
def test_malformed_values_name_the_variable(method, value, message):
    with pytest.raises(SettingError, match=message):
        getattr(Env({"X": value}), method)("X")


def test_minimums_are_enforced():
    with pytest.raises(SettingError, match="X must be >= 1, found 0"):
        Env({"X": "0"}).int("X", minimum=1)


def test_production_redis_calls_are_bounded():
    """A paused Redis holds a publish at most REDIS_SOCKET_TIMEOUT (the sender hears about it
    within a second, RELIABILITY F5), and a connect storm is not refused by redis-py's pool of
    100 connections."""
    code = (
        "import django; django.setup(); from django.conf import settings; "
        "print(settings.CHANNEL_LAYERS['default']['CONFIG']['hosts'][0])"
    )
    out = subprocess.run(
        [sys.executable, "-c", code],
        cwd=SERVICE,
        env={**os.environ, **PRODUCTION, "DJANGO_SETTINGS_MODULE": "chatsite.settings"},
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    ).stdout
    assert "'socket_timeout': 1.0" in out and "'max_connections': 1000" in out, out


@pytest.mark.parametrize(
    ("environ", "message"),
    [
        (
            {"REDIS_URLS": "redis://:pw@redis:6379/0,redis://:pw@REDIS:6379"},
            "expected distinct shards in REDIS_URLS, found 'redis://:***@REDIS:6379' twice",
        ),
        (
            {"REDIS_SENTINELS": "s1:26379,s2,s1", "REDIS_PASSWORD": "pw"},
            "expected distinct shards in REDIS_SENTINELS, found 's1:26379' twice",
        ),
        (
            {"REDIS_SENTINELS": "s1", "REDIS_MASTER_NAME": "a,b,a", "REDIS_PASSWORD": "pw"},
            "expected distinct shards in REDIS_MASTER_NAME, found 'a' twice",
        ),
        (
            {"REDIS_URL": "redis://r:6379/0", "REDIS_SENTINELS": "s1:26379"},
            "expected one of REDIS_URL, REDIS_URLS or REDIS_SENTINELS, found REDIS_URL and "
            "REDIS_SENTINELS",
        ),
        (
            {"REDIS_URLS": "redis://a:6379/0,http://b:6379"},
            "expected REDIS_URLS to hold redis:// URLs, found 'http://b:6379'",
        ),
        (
            {"REDIS_SENTINELS": "s1:notaport", "REDIS_PASSWORD": "pw"},
            "expected REDIS_SENTINELS entries as host:port, found 's1:notaport'",
        ),
        ({"REDIS_SENTINELS": "s1:26379"}, "REDIS_PASSWORD is required"),
        ({}, "REDIS_URL is required and has no default in production (or REDIS_URLS"),
    ],
)
def test_bad_redis_configuration_is_refused_naming_it(environ, message):
    """Shapes the channel layer cannot use stop the boot with `expected ..., found ...`."""
    from chatsite import redis_shards

    with pytest.raises(SettingError) as error:
        redis_shards.from_env(Env(environ), production=True)
    assert message in str(error.value)


def test_shards_given_twice_stop_the_boot():
    """The same refusal from a real boot (manage.py), with the password masked."""
    urls = "redis://:secret@127.0.0.1:1/0,redis://:secret@127.0.0.1:1/0"
    result = manage("check", **{**PRODUCTION, "REDIS_URL": "", "REDIS_URLS": urls})
    assert result.returncode != 0
    assert "expected distinct shards in REDIS_URLS, found 'redis://:***@127.0.0.1:1/0' twice" in (
        result.stderr
    )
    assert "secret" not in result.stderr


def test_redis_topologies_become_channel_layer_hosts():
    """One URL, shards and Sentinel groups all become channels_redis `hosts` entries."""
    from chatsite import redis_shards

    shards = redis_shards.from_env(
        Env({"REDIS_SENTINELS": "s1,s2:26380", "REDIS_MASTER_NAME": "a,b", "REDIS_PASSWORD": "p"}),
        production=True,
    )
    assert [s.label for s in shards] == ["sentinel:a", "sentinel:b"]
    host = shards[1].channels_host(socket_timeout=1.0, max_connections=10)
    assert host == {
        "sentinels": [("s1", 26379), ("s2", 26380)],
        "master_name": "b",
        "sentinel_kwargs": {"password": "p", "socket_timeout": 1.0},
        "password": "p",
        "socket_timeout": 1.0,
        "max_connections": 10,
    }
    urls = redis_shards.from_env(Env({"REDIS_URLS": "redis://a,redis://:x@b:6380/1"}), True)
    assert [s.label for s in urls] == ["a:6379/0", "b:6380/1"]
    assert urls[1].channels_host(max_connections=5) == {
        "address": "redis://:x@b:6380/1",
        "max_connections": 5,
    }
