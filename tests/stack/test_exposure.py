"""Exposure and storage bounds of the compose stack as shipped (issue 14): nginx's counters are
not reachable through the published ports, a room page view stores nothing in Postgres, and the
`prune` service is healthy and prunes, and web and ws have no route out."""

import json

from tests.functional import http_get, page_url, unique_room


def test_nginx_status_is_unreachable_through_the_published_ports(stack):
    """Through the published HTTP port /nginx-status answers 404 (no counters); compose publishes
    no port for nginx's internal listener (8082); inside the deployment it serves the counters
    (what the exporter reads)."""
    public = http_get(stack.base_url + "/nginx-status", timeout=10)
    assert public.status == 404 and "Active connections" not in public.text, public.status
    published = stack.compose("port", "nginx", "8082", check=False)
    assert published.returncode != 0 or not published.stdout.strip(), published.stdout
    (nginx,) = stack.containers("nginx")
    inside = stack.run(
        "docker", "exec", nginx, "curl", "-fsS", "http://127.0.0.1:8082/nginx-status"
    ).stdout
    assert "Active connections" in inside, inside


def test_room_page_view_stores_nothing(stack):
    """GET /chat/<new room>/ through nginx: 200, and Postgres has no row for that room."""
    room = unique_room("viewed")
    assert http_get(page_url(stack.base_url, room), timeout=10).status == 200
    rows = stack.psql(f"SELECT count(*) FROM chat_room WHERE name = '{room}'")  # noqa: S608
    assert rows.strip() == "0", "expected no room row for a page view"


def test_prune_service_is_healthy_and_prunes(stack):
    """The `prune` service reports healthy (its hourly loop ran); a run by hand deletes a message
    older than CHAT_RETENTION_DAYS (30) and reports it."""
    stack.wait_healthy("prune", 1)
    room = unique_room("retention")  # no quote in it: safe inside the SQL below
    values = f"('{room}', 1, now())"
    stack.psql(
        "WITH r AS (INSERT INTO chat_room (name, last_id, created_at) VALUES "  # noqa: S608
        + values
        + " RETURNING id) INSERT INTO chat_message (room_id, seq, text, sent_at) "
        "SELECT id, 1, 'ancient', now() - interval '40 days' FROM r"
    )
    out = stack.compose("exec", "-T", "prune", "python", "manage.py", "prune_messages").stdout
    assert "deleted 1 messages older than 30 days" in out, out
    where = f"m JOIN chat_room r ON r.id = m.room_id WHERE r.name = '{room}'"
    left = stack.psql("SELECT count(*) FROM chat_message " + where)  # noqa: S608
    assert left.strip() == "0", "expected the old message gone"


NO_ROUTE = (
    "import socket\n"
    "try:\n"
    "    socket.create_connection(('192.0.2.1', 80), timeout=2)\n"  # TEST-NET-1: never answers
    "    print('connected')\n"
    "except OSError as e:\n"
    "    print(type(e).__name__)\n"
)

UNKNOWN_NAME = (
    "import socket, time\n"
    "t = time.monotonic()\n"
    "try:\n"
    "    socket.getaddrinfo('no-such-service', 5432)\n"
    "except OSError:\n"
    "    pass\n"
    "print(round(time.monotonic() - t, 2))\n"
)


def internal(stack, network):
    """Whether a Docker network has no route out (compose's `internal: true`)."""
    return json.loads(stack.run("docker", "network", "inspect", network).stdout)[0]["Internal"]


def test_web_and_ws_have_no_route_out(stack):
    """web and ws sit on internal networks only (Docker drops what they send beyond them): every
    network of every replica is internal, and a connection to an outside address fails; a name
    Docker's DNS does not know still fails fast (it does not answer on internal networks)."""
    for service in ("web", "ws"):
        for container in stack.containers(service):
            networks = stack.inspect(container)["NetworkSettings"]["Networks"]
            assert len(networks) == 2, f"expected app and data, found {sorted(networks)}"
            for name in networks:
                assert internal(stack, name), f"expected {service}'s network {name} internal"
            out = stack.run("docker", "exec", container, "python", "-c", NO_ROUTE).stdout.strip()
            assert out != "connected", f"expected no route out of {service} ({container})"
            took = stack.run("docker", "exec", container, "python", "-c", UNKNOWN_NAME).stdout
            assert float(took) < 3, (
                f"expected an unknown name (a stopped dependency) to fail within 3 s in {service}, "
                f"found {took} s (compose's dns_opt)"
            )
    nginx = stack.containers("nginx")[0]
    edge = stack.inspect(nginx)["NetworkSettings"]["Networks"]
    assert not all(internal(stack, n) for n in edge), "expected nginx on a published network"
