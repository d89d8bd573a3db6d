"""compose.yaml as the parity tests see it: PyYAML (it resolves `<<:` merge keys), then compose's
`${VAR}` interpolation done here, so no Docker engine and no `docker compose config` is needed.

Secrets are interpolated as Kubernetes references, `$(NAME)`: compose's DATABASE_URL then reads
exactly as the manifests spell it, postgres://chat:$(POSTGRES_PASSWORD)@postgres:5432/chat.
"""

import re
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]

_VARIABLE = re.compile(
    r"\$\$|\$\{(?P<name>[A-Za-z_][A-Za-z0-9_]*)(?:(?P<op>:?[-?+])(?P<arg>[^}]*))?\}"
    r"|\$(?P<bare>[A-Za-z_][A-Za-z0-9_]*)"
)


def interpolate(text, env):
    """One string, by compose's rules: ${V}, ${V:-d}, ${V-d}, ${V:?e}, ${V?e}, ${V:+a}, $$."""

    def one(match):
        if match.group(0) == "$$":
            return "$"
        name = match.group("name") or match.group("bare")
        op, arg = match.group("op"), match.group("arg") or ""
        present, value = name in env, env.get(name, "")
        if op is None:
            return value
        if op in (":?", "?") and not (value if op == ":?" else present):
            raise KeyError(f"compose needs {name}: {arg}")
        return {
            ":-": value or arg,
            "-": value if present else arg,
            ":?": value,
            "?": value,
            ":+": arg if value else "",
            "+": arg if present else "",
        }[op]

    return _VARIABLE.sub(one, text)


def variables(node):
    """Names of the variables that the strings in `node` interpolate."""
    if isinstance(node, dict):
        return set().union(*(variables(v) for v in node.values())) if node else set()
    if isinstance(node, list):
        return set().union(*(variables(v) for v in node)) if node else set()
    if isinstance(node, str):
        return {m.group("name") or m.group("bare") for m in _VARIABLE.finditer(node)} - {None}
    return set()


def _resolve(node, env):
    if isinstance(node, dict):
        return {k: _resolve(v, env) for k, v in node.items()}
    if isinstance(node, list):
        return [_resolve(v, env) for v in node]
    if isinstance(node, str):
        return interpolate(node, env)
    return node


def env_example_sections(path=ROOT / ".env.example"):
    """{section header: [variable names]} of .env.example (header: a block's first comment)."""
    sections = {}
    for block in re.split(r"\n\s*\n", path.read_text()):
        lines = block.strip().splitlines()
        if lines and lines[0].startswith("# "):
            names = [ln.split("=", 1)[0] for ln in lines if re.match(r"^[A-Z][A-Z0-9_]*=", ln)]
            sections[lines[0][2:]] = names
    return sections


def secret_names():
    """The variables of .env.example's "Secrets" section: the keys of the Secret chat-secrets."""
    (names,) = [v for k, v in env_example_sections().items() if k.startswith("Secrets")]
    return names


def raw(path=ROOT / "compose.yaml"):
    """compose.yaml parsed, merge keys resolved, nothing interpolated."""
    return yaml.safe_load(path.read_text())


def services(path=ROOT / "compose.yaml"):
    """{name: service} with every variable at its default and every secret as `$(NAME)`."""
    env = {name: f"$({name})" for name in secret_names()}
    return _resolve(raw(path)["services"], env)


# Sequences compose merges rather than replaces when a later file names them again, with the key
# an entry is matched by (compose-spec "Merge and override"); any other sequence is replaced.
_MERGED_SEQUENCES = {
    "volumes": lambda v: v.split(":")[1] if isinstance(v, str) else v["target"],
    "ports": str,
    "tmpfs": str,
}


def _merge(base, override, key=None):
    if isinstance(base, dict) and isinstance(override, dict):
        out = dict(base)
        for k, v in override.items():
            out[k] = _merge(base[k], v, k) if k in base else v
        return out
    if isinstance(base, list) and isinstance(override, list) and key in _MERGED_SEQUENCES:
        ident = _MERGED_SEQUENCES[key]
        replaced = {ident(v) for v in override}
        return [v for v in base if ident(v) not in replaced] + override
    return override


def merged_services(*paths):
    """{name: service} of compose files used together (`-f a -f b`, COMPOSE_FILE), later files
    overriding earlier ones as compose merges them: mappings (environment, depends_on, deploy)
    key by key, volumes by their target, anything else (command, image) replaced. Interpolated
    as services() does."""
    merged = {}
    for path in paths:
        for name, service in raw(path)["services"].items():
            merged[name] = _merge(merged[name], service) if name in merged else service
    env = {name: f"$({name})" for name in secret_names()}
    return _resolve(merged, env)


def scheduled(path=ROOT / "compose.yaml"):
    """Services that run a command every N seconds (`--every N`): Kubernetes CronJobs."""
    return {n: s for n, s in services(path).items() if "--every" in (s.get("command") or [])}


def every(service):
    """(the command run once, without --every N and --touch FILE; N) of a scheduled service."""
    command, once, seconds = list(service["command"]), [], None
    while command:
        arg = command.pop(0)
        if arg == "--every":
            seconds = int(command.pop(0))
        elif arg == "--touch":
            command.pop(0)
        else:
            once.append(arg)
    return once, seconds


def long_running(path=ROOT / "compose.yaml"):
    """The services compose keeps running (not the one-shot `restart: "no"` jobs, nor the
    scheduled ones, which Kubernetes runs as CronJobs)."""
    return {
        n: s
        for n, s in services(path).items()
        if s.get("restart") != "no" and n not in scheduled(path)
    }


def one_shot(path=ROOT / "compose.yaml"):
    return {n: s for n, s in services(path).items() if s.get("restart") == "no"}


def environment(service):
    """A service's environment as a dict (compose allows a list of NAME=value too)."""
    env = service.get("environment") or {}
    if isinstance(env, list):
        env = dict(item.split("=", 1) if "=" in item else (item, None) for item in env)
    return {k: "" if v is None else str(v) for k, v in env.items()}


def memory_bytes(text):
    """compose/Docker memory ("256M", "1g"; binary units) or Kubernetes quantity ("256Mi")."""
    match = re.fullmatch(r"(\d+)([kKmMgG]i?)?[bB]?", str(text))
    assert match, f"expected a memory size, found {text!r}"
    number, unit = int(match.group(1)), (match.group(2) or "").lower().rstrip("i")
    return number * 1024 ** {"": 0, "k": 1, "m": 2, "g": 3}[unit]


def seconds(text):
    """compose durations ("30s", "1m30s") in seconds."""
    units = {"h": 3600, "m": 60, "s": 1, "ms": 0.001}
    parts = re.findall(r"(\d+)(ms|h|m|s)", str(text))
    assert parts, f"expected a duration, found {text!r}"
    return sum(int(n) * units[u] for n, u in parts)
