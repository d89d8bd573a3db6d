"""The libraries whose internals the ws runtime overrides reach into (chat/runtime/) are pinned to
one version in three places that must agree: requirements.in (exact pins), the lock
requirements.txt, and runtime.WRITTEN_AGAINST (what the overrides were written and checked
against). Moving one without the others is how an override ends up running against code it was
never checked on; scripts/upgrade-check is the way to move them together."""

import re
from pathlib import Path

from chat import runtime

SERVICE = Path(__file__).resolve().parents[2] / "services/chat"
PINNED = ("daphne", "channels", "channels-redis", "twisted", "autobahn")
_PIN = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)(?:\[[^\]]*\])?\s*==\s*([^\s;#]+)")


def canonical(name):
    """PEP 503's normal form: Twisted, channels_redis -> twisted, channels-redis."""
    return re.sub(r"[-_.]+", "-", name).lower()


def exact_pins(path):
    """{canonical name: version} for every `name==version` line of a requirements file."""
    pins = {}
    for line in path.read_text().splitlines():
        match = _PIN.match(line.strip())
        if match:
            pins[canonical(match.group(1))] = match.group(2)
    return pins


def disagreements(sources):
    """'name: a X, b Y' for each of PINNED that differs between sources or lacks an exact pin."""
    found = []
    for name in PINNED:
        seen = {where: pins.get(name, "no exact pin") for where, pins in sources.items()}
        if len(set(seen.values())) != 1 or "no exact pin" in seen.values():
            found.append(f"{name}: " + ", ".join(f"{w} {v}" for w, v in seen.items()))
    return found


def test_requirements_in_lock_and_written_against_pin_the_same_versions():
    """requirements.in, requirements.txt and runtime.WRITTEN_AGAINST name one version of each of
    daphne, channels, channels-redis, Twisted and autobahn."""
    sources = {
        "requirements.in": exact_pins(SERVICE / "requirements.in"),
        "requirements.txt": exact_pins(SERVICE / "requirements.txt"),
        "runtime.WRITTEN_AGAINST": {canonical(k): v for k, v in runtime.WRITTEN_AGAINST.items()},
    }
    problems = disagreements(sources)
    assert not problems, (
        "expected one version per library in all three; found\n  "
        + "\n  ".join(problems)
        + "\n(scripts/upgrade-check checks a new version; then move all three together)"
    )


def test_a_wildcard_or_a_missing_pin_counts_as_a_disagreement(tmp_path):
    """The comparison cannot pass vacuously: `==4.2.*` is not 4.2.3, and a missing line is not a
    match."""
    loose = tmp_path / "requirements.in"
    loose.write_text("daphne==4.2.*\nchannels-redis[cryptography]==4.3.0  # extras\n")
    pins = exact_pins(loose)
    assert pins == {"daphne": "4.2.*", "channels-redis": "4.3.0"}
    problems = disagreements({"in": pins, "lock": {"daphne": "4.2.3", "channels-redis": "4.3.0"}})
    assert [p.split(":")[0] for p in problems] == ["daphne", "channels", "twisted", "autobahn"]
    assert "daphne: in 4.2.*, lock 4.2.3" in problems
