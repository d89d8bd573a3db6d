"""The service's test setup: Django on a real database, and channel layers on a real Redis.

CHAT_TEST_DB=sqlite (default) or postgres picks the database for the whole run; the postgres run
starts a throw-away cluster with initdb/pg_ctl. Consumer tests run on each channel layer kind,
the product's own (chat.layers.ChatPubSubChannelLayer, the production default) among them.
"""

import contextlib
import os
import tempfile

import pytest

from chat.tests.shards import shards_at
from tests import servers

_stack = contextlib.ExitStack()


def pytest_configure(config):
    os.environ["DJANGO_SETTINGS_MODULE"] = "chatsite.settings"
    os.environ.pop("REDIS_URL", None)
    tmp = _stack.enter_context(tempfile.TemporaryDirectory(prefix="chat-tests-"))
    kind = os.environ.get("CHAT_TEST_DB", "sqlite")
    if kind == "postgres":
        pg = _stack.enter_context(servers.postgres_server())
        os.environ["DATABASE_URL"] = pg.create_database("chat_test")
        config.postgres = pg
    elif kind == "sqlite":
        os.environ["DATABASE_URL"] = f"sqlite:///{tmp}/test.sqlite3"
    else:
        raise pytest.UsageError(f"CHAT_TEST_DB must be sqlite or postgres, found {kind!r}")

    import django
    from django.core.management import call_command

    django.setup()
    call_command("migrate", verbosity=0)


def pytest_unconfigure(config):
    _stack.close()


def pytest_report_header(config):
    return f"chat database: {os.environ.get('CHAT_TEST_DB', 'sqlite')}"


@pytest.fixture(autouse=True)
def _empty_database():
    """Every test starts with no rooms and no messages."""
    yield
    from django.db import close_old_connections

    from chat.models import Room

    close_old_connections()  # as a server does between requests (Postgres may have restarted)
    Room.objects.all().delete()


@pytest.fixture(scope="session")
def redis_url():
    with servers.redis_server() as url:
        yield url


LAYERS = {
    "memory": lambda url: {"BACKEND": "channels.layers.InMemoryChannelLayer"},
    "pubsub": lambda url: {
        "BACKEND": "channels_redis.pubsub.RedisPubSubChannelLayer",
        "CONFIG": {"hosts": [{"address": url}], "prefix": "test"},
    },
    "core": lambda url: {
        "BACKEND": "channels_redis.core.RedisChannelLayer",
        "CONFIG": {"hosts": [{"address": url}], "prefix": "test"},
    },
    # What production runs (CHANNEL_LAYER=pubsub): channels_redis' pub/sub layer with local-only
    # consumer channels, lean queues, blake2b sharding and the resync after a reconnect.
    "ours": lambda url: {
        "BACKEND": "chat.layers.ChatPubSubChannelLayer",
        "CONFIG": {"hosts": [{"address": url}], "prefix": "test"},
    },
}


@pytest.fixture(params=list(LAYERS))
def layer(request, settings_override):
    """Run the test on each channel layer kind: in-memory, Redis pub/sub, Redis core, ours."""
    url = request.getfixturevalue("redis_url") if request.param != "memory" else None
    settings_override(
        CHANNEL_LAYERS={"default": LAYERS[request.param](url)}, REDIS_SHARDS=shards_at(url)
    )
    return request.param


@pytest.fixture
def settings_override():
    """Override Django settings for one test; channel layers are rebuilt from the new settings."""
    from channels.layers import channel_layers
    from django.test.utils import override_settings

    overrides = []

    def apply(**values):
        o = override_settings(**values)
        o.enable()
        overrides.append(o)
        channel_layers.backends.clear()

    yield apply
    for o in reversed(overrides):
        o.disable()
    channel_layers.backends.clear()


@pytest.fixture
def chat_limits(settings_override):
    """Change entries of settings.CHAT for one test."""
    from django.conf import settings

    def apply(**values):
        settings_override(CHAT={**settings.CHAT, **values})

    return apply


@pytest.fixture
def postgres(request):
    """The run's throw-away Postgres (CHAT_TEST_DB=postgres), to stop and start it."""
    pg = getattr(request.config, "postgres", None)
    if pg is None:
        pytest.skip("runs in the postgres tier (CHAT_TEST_DB=postgres)")
    return pg
