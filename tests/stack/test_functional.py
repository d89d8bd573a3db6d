"""The shared functional check against the compose stack, with the sockets spread over replicas."""

from tests.functional import check_chat, http_get


async def test_chat_through_nginx_reaches_clients_on_both_ws_replicas(stack):
    """Page via uWSGI, 6 sockets via /ws/ landing on both Daphne replicas, one message to all."""
    replicas = stack.containers("ws")
    assert len(replicas) == 2, f"expected 2 ws replicas, found {len(replicas)}"

    def spread():
        per_replica = {c[:12]: stack.gauge(c) for c in replicas}
        assert all(n >= 1 for n in per_replica.values()), (
            f"expected nginx to spread the sockets over both ws replicas, found {per_replica}"
        )
        return per_replica

    result = await check_chat(stack.base_url, clients=6, while_connected=spread)
    print(
        f"\nfunctional check: {result['timings']}; sockets per replica {result['while_connected']}"
    )


def test_room_page_is_served_by_the_uwsgi_web_role(stack):
    """Pages come from `web` (uWSGI processes): without it nginx answers 502, with it 200."""
    for container in stack.containers("web"):
        # ps truncates its output to 80 columns when not on a terminal, and pyuwsgi's command
        # line starts "/opt/venv/bin/python /opt/venv/bin/uwsgi": ask for the full width.
        top = stack.run("docker", "top", container, "-eo", "pid,args", "--width", "4096").stdout
        assert "uwsgi" in top, f"expected uWSGI processes in {container[:12]}, found:\n{top}"
    url = stack.base_url + "/chat/served-by-web/"
    assert http_get(url).status == 200
    stack.compose("stop", "web")
    try:
        status = http_get(url).status
        assert status in (502, 503, 504), f"expected 502/503/504 without web, found {status}"
    finally:
        stack.compose("start", "web")
        stack.wait_healthy("web", 2)
    assert http_get(url).status == 200
