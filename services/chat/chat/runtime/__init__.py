"""Every override of Daphne, autobahn, Twisted, Channels and channels_redis internals, in one place.

The ws role's speed and memory come from replacing private parts of those libraries. Each
override lives in the module named after the library it reaches into (`twisted.py`,
`autobahn.py`, `daphne.py`, `channels.py`, `channels_redis.py`), says in its header what it
replaces, the version it was written against, what it saves (measured, with the command), and
declares the upstream names it hooks (`Hook`). A copy of upstream code also records a digest of
the upstream source it was copied from: an upstream change to it (a security fix) fails the
check instead of being silently not inherited.

- `WS_RUNTIME_OVERRIDES` (`all`, `none`, or a comma list of names below) turns them on and off;
  with `none` the ws role runs the stock paths (docs/PERFORMANCE.md, "Runtime overrides").
- `check()` verifies every hook against the installed libraries (tests: test_runtime.py;
  `scripts/upgrade-check` runs it against the newest releases).
- `manage.py runws` logs which overrides are active and exports
  `chat_runtime_override_active{name=...}` on /metrics.
"""

import hashlib
import importlib
import inspect
import os
from dataclasses import dataclass, field

# Every override, in the order they are documented. Names are stable: they are the values of
# WS_RUNTIME_OVERRIDES and the label of chat_runtime_override_active.
NAMES = (
    "twisted.write_now",
    "autobahn.lean_protocol",
    "daphne.create_application",
    "channels.consumer_loop",
    "channels.dispatch",
    "channels.router",
    "channels_redis.lean_channels",
    "channels_redis.shard_hash",
    "channels_redis.resync",
)

# The versions every override was written against; requirements.in pins exactly these.
WRITTEN_AGAINST = {
    "twisted": "26.10.0",
    "autobahn": "26.10.2",
    "daphne": "4.2.3",
    "channels": "4.3.2",
    "channels_redis": "4.3.0",
    "redis": "8.1.0",
}


def parse(value):
    """The set of enabled override names from a WS_RUNTIME_OVERRIDES value; ValueError if bad."""
    value = (value or "all").strip()
    if value == "all":
        return frozenset(NAMES)
    if value == "none":
        return frozenset()
    names = [name.strip() for name in value.split(",") if name.strip()]
    unknown = [name for name in names if name not in NAMES]
    if unknown or not names:
        raise ValueError(
            f"WS_RUNTIME_OVERRIDES: expected 'all', 'none' or a comma list of {', '.join(NAMES)}; "
            f"found {value!r}"
        )
    return frozenset(names)


_enabled = None


def enabled(name):
    """True if override `name` is switched on (WS_RUNTIME_OVERRIDES, read once per process)."""
    global _enabled
    if name not in NAMES:
        raise KeyError(f"no runtime override named {name!r}")
    if _enabled is None:
        _enabled = parse(os.environ.get("WS_RUNTIME_OVERRIDES", "all"))
    return name in _enabled


def set_enabled(names):
    """Replace the switch (tests, and settings.py which validated the variable)."""
    global _enabled
    _enabled = frozenset(names)


def active():
    """{name: 1 or 0} for every override."""
    return {name: int(enabled(name)) for name in NAMES}


def source_digest(obj):
    """A short digest of an object's source, blank lines and comments kept (they rarely move)."""
    return hashlib.sha256(inspect.getsource(obj).encode()).hexdigest()[:16]


@dataclass(frozen=True)
class Hook:
    """One upstream name an override relies on.

    `target` is "module:Qual.name". `params` is the parameter list the override expects (None:
    not callable, it only has to exist). `source` is the digest of the upstream source a copy
    was made from (None: not copied). `attrs` are instance/class attributes it reads or sets,
    checked on `target` (a class) or named in its source. `contains` are fragments its source
    must hold (an assignment the override intercepts, such as Daphne's `self.ws_factory = `).
    """

    target: str
    params: tuple = None
    source: str = None
    attrs: tuple = ()
    contains: tuple = ()

    def resolve(self):
        module_name, _, qualname = self.target.partition(":")
        obj = importlib.import_module(module_name)
        for part in qualname.split("."):
            obj = getattr(obj, part)
        return obj

    def problems(self):
        """What is wrong with this hook against the installed library (empty: fine)."""
        try:
            obj = self.resolve()
        except (ImportError, AttributeError) as exc:
            return [f"{self.target}: missing ({type(exc).__name__}: {exc})"]
        found = []
        if self.params is not None:
            try:
                params = tuple(inspect.signature(obj).parameters)
            except (TypeError, ValueError) as exc:
                return [f"{self.target}: not a function ({exc})"]
            if params != tuple(self.params):
                found.append(f"{self.target}: signature {params}, expected {tuple(self.params)}")
        if self.source is not None:
            digest = source_digest(obj)
            if digest != self.source:
                found.append(
                    f"{self.target}: upstream source changed (digest {digest}, copy made from "
                    f"{self.source}): review the diff and port it into the copy"
                )
        if self.attrs:
            text = _source_text(obj)
            for attr in self.attrs:
                if not hasattr(obj, attr) and attr not in text:
                    found.append(f"{self.target}: no attribute {attr!r}")
        if self.contains:
            text = _source_text(obj)
            for fragment in self.contains:
                if fragment not in text:
                    found.append(f"{self.target}: its source no longer has {fragment!r}")
        return found


def _source_text(obj):
    """The source of obj, and of every class it inherits from (instance attributes set there)."""
    parts = []
    for part in inspect.getmro(obj) if inspect.isclass(obj) else (obj,):
        try:
            parts.append(inspect.getsource(part))
        except (TypeError, OSError):
            pass
    return "\n".join(parts)


@dataclass(frozen=True)
class Override:
    """One override: what it replaces, against which version, what it saves, what it hooks."""

    name: str
    replaces: str
    library: str
    saves: str
    hooks: tuple = field(default_factory=tuple)

    def problems(self):
        found = []
        for hook in self.hooks:
            found.extend(hook.problems())
        return found


def overrides():
    """Every Override, from the module of each library (importing them registers nothing)."""
    from chat.runtime import autobahn, channels, channels_redis, daphne, twisted

    found = {}
    for module in (twisted, autobahn, daphne, channels, channels_redis):
        for override in module.OVERRIDES:
            found[override.name] = override
    missing = set(NAMES) ^ set(found)
    if missing:
        raise RuntimeError(f"runtime overrides declared and defined differ: {sorted(missing)}")
    return [found[name] for name in NAMES]


def always_hooks():
    """Hooks that product behaviour relies on whatever the switch says (read-only state, a
    server callback): checked with the overrides, listed under the name "always"."""
    from chat.runtime import autobahn, channels, channels_redis, daphne, twisted

    return [h for m in (twisted, autobahn, daphne, channels, channels_redis) for h in m.ALWAYS]


def check():
    """{name: [problem, ...]} for each override (and "always") whose upstream hooks do not fit."""
    found = {o.name: o.problems() for o in overrides()}
    found["always"] = [p for hook in always_hooks() for p in hook.problems()]
    return {name: problems for name, problems in found.items() if problems}


def versions():
    """{library: installed version} for the libraries the overrides reach into."""
    from importlib.metadata import version

    dists = {"twisted": "Twisted", "channels_redis": "channels_redis"}
    return {lib: version(dists.get(lib, lib)) for lib in WRITTEN_AGAINST}
