"""What the servers logged over the whole session: no error nobody asked for."""

import json

import pytest

from tests.native import stack as native

pytestmark = pytest.mark.final

EXPECTED = {
    # Logged by channels_redis while a test had stopped Redis on purpose (test_faults.py).
    ("channels_redis.pubsub", "Unexpected exception in receive task"),
}


def unexpected_errors(proc):
    """ERROR records (JSON lines) and bare tracebacks in a Django process's log."""
    found = []
    for line in proc.log.read_text(errors="replace").splitlines():
        try:
            record = json.loads(line)
        except ValueError:
            if "Traceback (most recent call last)" in line:
                found.append(line)
            continue
        if not isinstance(record, dict) or record.get("level") not in ("ERROR", "CRITICAL"):
            continue
        if (record.get("logger"), record.get("msg")) not in EXPECTED:
            found.append(f"{record.get('ts')} {record.get('logger')}: {record.get('msg')}")
            found.extend(str(record.get("exc", "")).splitlines())
    return found


def test_no_unexpected_errors_in_server_logs(topo):
    """No web or ws process logged an error or a traceback besides the Redis outage's."""
    django = {p for p in native.STARTED if not p.name.startswith("nginx")}
    problems = {p.name: unexpected_errors(p) for p in django}
    report = "\n".join(
        f"--- {name}:\n" + "\n".join(found) for name, found in problems.items() if found
    )
    assert not report, f"expected no errors in the server logs, found:\n{report}"
