"""Every variable is declared once, in services/chat/chatsite/config.py, and nothing disagrees
with it: the generated files (.env.example, docs/configuration.md, k8s/base/config/*.env),
compose's environments and `${NAME:-default}`s, the start scripts' defaults, scripts/up's, and
every environment read in the service's source. A failure says what to run or which line to
change (docs/configuration.md, "To change a default").

Scope: what our code reads. The images' own variables (POSTGRES_USER, REDISCLI_AUTH) and
redis/redis-ha.sh's are outside it; the operator scripts' own (ENV_FILE, BACKUP_DIR) are in
their usage blocks.
"""

import ast
import difflib
import re
from pathlib import Path

import pytest
import yaml

from chatsite import configgen
from chatsite.config import (
    BUILT,
    COMPOSE,
    DECLARED,
    DJANGO,
    K8S,
    KINDS,
    MIGRATE,
    NGINX,
    NGINX_SERVICE,
    READERS,
    RENAMED,
    REQUIRED,
    SERVICE,
    SETTINGS,
    UP,
    WEB,
    WS,
    Ref,
    text,
)
from chatsite.env import Env
from tests.k8s import compose

ROOT = Path(__file__).resolve().parents[2]
SERVICE_DIR = ROOT / "services/chat"
SCRIPTS = {
    WEB: SERVICE_DIR / "bin/start-web",
    WS: SERVICE_DIR / "bin/start-ws",
    MIGRATE: SERVICE_DIR / "bin/start-migrate",
    NGINX: ROOT / "nginx/start-nginx",
}
# The reader itself: its reads take the name as a parameter (Env._raw), not a literal.
READER_MODULES = {"chatsite/env.py", "chatsite/config.py", "chatsite/configgen.py"}
COMPOSE_FILES = sorted(ROOT.glob("compose*.yaml"))
NO_DEFAULT = object()
UNKNOWN = object()  # a default that is not a literal
# compose.yaml's environments that carry variables to our processes, by config.py's name for
# them: the x-django block (web, ws and migrate merge it) and the nginx service.
CARRIERS = {DJANGO: ("web", "ws", "migrate"), NGINX_SERVICE: ("nginx",)}


def compose_environments(document):
    """{carrier: the raw environment compose.yaml gives it}."""
    return {
        DJANGO: document["x-django"]["environment"],
        NGINX_SERVICE: document["services"]["nginx"]["environment"],
    }


# ---------------------------------------------------------------------------------------------
# Scanners: what a piece of source reads from the environment


def _dotted(node):
    """`os.environ.get` for that expression, None for anything not a plain dotted name."""
    parts = []
    while isinstance(node, ast.Attribute):
        parts.append(node.attr)
        node = node.value
    if not isinstance(node, ast.Name):
        return None
    return ".".join([node.id, *reversed(parts)])


def _is_environ(node):
    return _dotted(node) in {"os.environ", "environ"}


def _names(arg, parents):
    """The literal names an argument can hold: a string, or a loop variable over literals."""
    if isinstance(arg, ast.Constant) and isinstance(arg.value, str):
        return [arg.value]
    if isinstance(arg, ast.Name):
        node = arg
        while node in parents:
            node = parents[node]
            if isinstance(node, ast.FunctionDef) and node.name in ENV_METHODS:
                if arg.id in {a.arg for a in node.args.args}:
                    return []  # a reader passing its parameter on: its callers are scanned
            loops = getattr(node, "generators", None) or (
                [node] if isinstance(node, ast.For) else []
            )
            for loop in loops:
                if isinstance(loop.target, ast.Name) and loop.target.id == arg.id:
                    items = getattr(loop.iter, "elts", None)
                    if items and all(isinstance(i, ast.Constant) for i in items):
                        return [i.value for i in items]
    return [None]


def _default(call):
    """The default a read passes (second argument or default=), if it is a literal."""
    node = call.args[1] if len(call.args) > 1 else None
    node = next((k.value for k in call.keywords if k.arg == "default"), node)
    if node is None:
        return NO_DEFAULT
    try:
        value = ast.literal_eval(node)
    except ValueError:
        return UNKNOWN
    return tuple(value) if isinstance(value, list) else value


ENV_METHODS = {"str", "bool", "int", "float", "list", "choice", "setting"}


def python_reads(source):
    """[(line, name, default)] of every environment read in Python source: env.<type>(NAME, ...),
    env.setting(NAME), setting(NAME), os.environ[NAME], os.environ.get/setdefault/pop(NAME, ...),
    os.getenv(NAME, ...), NAME in os.environ. name None: not a literal the scan can follow."""
    tree = ast.parse(source)
    parents = {child: node for node in ast.walk(tree) for child in ast.iter_child_nodes(node)}
    reads = []
    for node in ast.walk(tree):
        arg, default = None, NO_DEFAULT
        if isinstance(node, ast.Call) and node.args:
            name = _dotted(node.func) or ""
            head, _, method = name.rpartition(".")
            env_read = method in ENV_METHODS and head.rpartition(".")[2] == "env"
            environ_read = method in {"get", "setdefault", "pop"} and head in {
                "os.environ",
                "environ",
            }
            if env_read or environ_read or name in {"setting", "os.getenv", "getenv"}:
                arg, default = node.args[0], _default(node)
                default = NO_DEFAULT if method == "setting" or name == "setting" else default
        elif isinstance(node, ast.Subscript) and _is_environ(node.value):
            arg = node.slice
        elif isinstance(node, ast.Compare) and any(_is_environ(c) for c in node.comparators):
            arg = node.left
        if arg is not None:
            reads += [(node.lineno, name, default) for name in _names(arg, parents)]
    return reads


_SHELL_REF = re.compile(
    r"\$\{(?P<name>[A-Za-z_][A-Za-z0-9_]*)(?P<op>:?[-=?+])?(?P<arg>[^}]*)\}"
    r"|\$(?P<bare>[A-Za-z_][A-Za-z0-9_]*)"
)
_SHELL_ASSIGN = re.compile(r"(?:^|[\s;()])(?:export\s+|local\s+)?([A-Za-z_][A-Za-z0-9_]*)=")
SHELL_OWN = {"BASH_REMATCH", "BASH_SOURCE", "EPOCHREALTIME", "HOME", "IFS", "PATH", "PWD"}


def shell_reads(source):
    """[(line, name, default)] of the environment variables a shell script reads: upper-case
    names expanded with a default (${NAME:-x}, ${NAME:=x}) or never assigned by the script."""
    code = [
        (number, line)
        for number, line in enumerate(source.splitlines(), 1)
        if not line.lstrip().startswith("#")
    ]
    assigned = {m[1] for _, line in code for m in _SHELL_ASSIGN.finditer(line)}
    reads = []
    for number, line in code:
        for match in _SHELL_REF.finditer(line):
            name = match["name"] or match["bare"]
            if not re.fullmatch(r"[A-Z][A-Z0-9_]*", name) or name in SHELL_OWN:
                continue
            if match["op"] in (":-", "-", ":=", "="):
                reads.append((number, name, match["arg"]))
            elif name not in assigned:
                reads.append((number, name, NO_DEFAULT))
    return reads


def _same(found, declared):
    """A default found in source equals the declared one (as values, or as spelled in text)."""
    if isinstance(found, str) and not isinstance(declared, str):
        return found == text(declared)
    if isinstance(declared, Ref) or declared is REQUIRED:
        return False
    return found == (tuple(declared) if isinstance(declared, list) else declared)


def read_problems(where, reader, reads):
    """Messages for reads of undeclared variables, by an undeclared reader, at another default."""
    problems = []
    for line, name, default in reads:
        if name is None:
            problems.append(f"{where}:{line}: a read whose variable name is not a literal")
            continue
        declared = DECLARED.get(name)
        if declared is None:
            problems.append(
                f"{where}:{line}: {name} is not declared in chatsite/config.py (declare it, "
                "then run scripts/gen-config)"
            )
            continue
        if reader not in declared.read_by:
            problems.append(
                f"{where}:{line}: {name} is read here; config.py's read_by must name {reader!r}"
            )
        if default not in (NO_DEFAULT, UNKNOWN) and not _same(
            default, declared.default_for(reader)
        ):
            problems.append(
                f"{where}:{line}: {name} defaults to {default!r} here, "
                f"config.py declares {text(declared.default_for(reader))!r}"
            )
    return problems


def service_python_files():
    files = [p for p in SERVICE_DIR.rglob("*.py") if "tests" not in p.parts]
    files = [p for p in files if "migrations" not in p.parts]
    files += [
        p
        for p in (SERVICE_DIR / "bin").iterdir()
        if p.read_text().startswith("#!/usr/bin/env python")
    ]
    return sorted(p for p in files if p.relative_to(SERVICE_DIR).as_posix() not in READER_MODULES)


# ---------------------------------------------------------------------------------------------
# compose: what its environments pass and what its files interpolate


def expected_compose_value(setting):
    """How compose.yaml spells a variable that .env sets: `${NAME:-default}`."""
    if setting.placeholder:
        return f"${{{setting.name}:?"
    return f"${{{setting.name}:-{text(setting.stack_value)}}}"


def compose_environment_problems(carrier, environment):
    """Messages for a compose.yaml environment that disagrees with config.py."""
    service = {DJANGO: "x-django", NGINX_SERVICE: "nginx"}[carrier]
    environment = {k: "" if v is None else str(v) for k, v in (environment or {}).items()}
    problems = []
    for name, raw in environment.items():
        declared = DECLARED.get(name)
        if declared is None:
            problems.append(f"compose.yaml {service}: {name} is not declared in config.py")
            continue
        if carrier not in declared.compose:
            problems.append(f"compose.yaml {service}: passes {name}, config.py's compose says not")
        if declared.set_by is None:
            expected = expected_compose_value(declared)
            good = raw.startswith(expected) if declared.placeholder else raw == expected
            if not good:
                problems.append(
                    f"compose.yaml {service}: expected `{name}: {expected}`, found `{name}: {raw}`"
                )
        elif declared.stack_value is not BUILT:
            value = compose.interpolate(raw, {})
            if value != text(declared.stack_value):
                problems.append(
                    f"compose.yaml {service}: {name} is {value!r}, config.py declares "
                    f"{text(declared.stack_value)!r} (set by {declared.set_by})"
                )
    for declared in SETTINGS:
        if carrier in declared.compose and declared.name not in environment:
            value = expected_compose_value(declared) if declared.set_by is None else "..."
            problems.append(
                f"compose.yaml {service}: expected `{declared.name}: {value}`, found none"
            )
    return problems


def strings(node):
    if isinstance(node, dict):
        for key, value in node.items():
            yield from strings(key)
            yield from strings(value)
    elif isinstance(node, list):
        for value in node:
            yield from strings(value)
    elif isinstance(node, str):
        yield node


def interpolation_problems(where, document):
    """Messages for `${NAME...}` in a compose file naming an undeclared variable, one .env
    cannot set, or a default other than the declared one."""
    problems = []
    for string in strings(document):
        for match in compose._VARIABLE.finditer(string):
            name = match["name"] or match["bare"]
            if name is None:
                continue  # $$
            declared = DECLARED.get(name)
            if declared is None:
                problems.append(f"{where}: ${{{name}}} is not declared in config.py")
            elif declared.set_by is not None:
                problems.append(f"{where}: ${{{name}}}: config.py says .env cannot set it")
            elif match["op"] in (":-", "-") and match["arg"] != text(declared.stack_value):
                problems.append(
                    f"{where}: ${{{name}{match['op']}{match['arg']}}}, config.py declares "
                    f"{text(declared.stack_value)!r}"
                )
    return problems


def no_problems(problems):
    """Fail listing every problem once, one per line (not just the first)."""
    assert not problems, "\n".join(dict.fromkeys(problems))


# ---------------------------------------------------------------------------------------------
# The declaration itself


def test_declarations_are_well_formed():
    """Names are unique and upper case; types, choices, bounds, readers and references hold
    together; renamed old names are not live variables; a doc is one line."""
    assert len(DECLARED) == len(SETTINGS), "a name is declared twice"
    problems = []
    for s in SETTINGS:
        values = [s.default, s.production_default, s.stack_value, *dict(s.defaults).values()]
        values = [v for v in values if v not in (None, REQUIRED, BUILT) and not isinstance(v, Ref)]
        checks = {
            "an upper-case name": re.fullmatch(r"[A-Z][A-Z0-9_]*", s.name),
            f"a kind among {KINDS}": s.kind in KINDS,
            "readers among READERS": s.read_by and set(s.read_by) <= set(READERS),
            "a one-line doc ending with a period": "\n" not in s.doc and s.doc.endswith("."),
            "choices only for a choice": bool(s.choices) == (s.kind == "choice"),
            "defaults among its choices": not s.choices or all(v in s.choices for v in values),
            "numbers at or above the minimum": s.minimum is None
            or all(v >= s.minimum for v in values if not isinstance(v, str)),
            "a reference to a declared variable": not isinstance(s.default, Ref)
            or s.default.name in DECLARED,
            "no .env note or #line unless .env sets it": s.set_by is None
            or not (s.note or s.commented),
            "per-reader defaults for its readers": all(r in s.read_by for r, _ in s.defaults),
        }
        problems += [f"{s.name}: expected {what}" for what, ok in checks.items() if not ok]
    for old, new in RENAMED.items():
        if old in DECLARED:
            problems.append(f"{old} is renamed to {new} and declared as a live variable too")
        if new not in DECLARED:
            problems.append(f"{old} is renamed to {new}, which is not declared")
    no_problems(problems)


def test_undeclared_names_cannot_be_read():
    """The service's reader refuses a name config.py does not declare, and reads a declared
    one with its declared type and mode's default."""
    with pytest.raises(LookupError, match=r"expected NEW_VAR declared in chatsite/config\.py"):
        Env({}).setting("NEW_VAR")
    age = DECLARED["DATABASE_CONN_MAX_AGE"]
    assert Env({}).setting(age.name, production=True) == age.production_default
    assert Env({}).setting(age.name, production=False) == age.default
    assert Env({"CHANNEL_GROUP_EXPIRY": "120"}).setting("DAPHNE_WEBSOCKET_TIMEOUT") == 120


# ---------------------------------------------------------------------------------------------
# Generated files


@pytest.mark.parametrize("path", sorted(configgen.generated()))
def test_generated_file_is_current(path):
    """.env.example, docs/configuration.md and k8s/base/config/*.env are what
    `scripts/gen-config` writes from config.py, byte for byte."""
    expected = configgen.generated()[path]
    found = (ROOT / path).read_text()
    diff = difflib.unified_diff(
        found.splitlines(), expected.splitlines(), path, "generated", lineterm="", n=1
    )
    assert found == expected, f"{path} is stale: run scripts/gen-config\n" + "\n".join(
        list(diff)[:40]
    )


def test_readme_points_at_the_generated_files():
    """README's table names docs/configuration.md and the generator beside .env.example."""
    readme = (ROOT / "README.md").read_text()
    assert "docs/configuration.md" in readme and "scripts/gen-config" in readme


# ---------------------------------------------------------------------------------------------
# compose and Kubernetes


@pytest.mark.parametrize("carrier", sorted(CARRIERS))
def test_compose_passes_every_setting_at_its_declared_default(carrier):
    """compose.yaml's x-django block (web, ws, migrate) and nginx service pass every variable
    config.py says .env sets, as `${NAME:-declared default}`, and nothing undeclared; fixed
    values are the declared ones."""
    document = compose.raw()
    environment = compose_environments(document)[carrier]
    no_problems(compose_environment_problems(carrier, environment))
    for service in CARRIERS[carrier]:
        assert document["services"][service]["environment"] == environment, service


@pytest.mark.parametrize("path", COMPOSE_FILES, ids=lambda p: p.name)
def test_compose_interpolates_declared_variables_at_their_defaults(path):
    """Every `${NAME}` in a compose file is a declared variable .env may set, and any default
    it spells is the declared one."""
    no_problems(interpolation_problems(path.name, compose.raw(path)))


@pytest.mark.parametrize(
    "path", [p for p in COMPOSE_FILES if p.name != "compose.yaml"], ids=lambda p: p.name
)
def test_compose_overrides_pass_declared_variables(path):
    """The topology overrides (compose.ha.yaml, compose.shards.yaml) give the app only
    declared variables read by the service (their values are the topology's own)."""
    services = compose.raw(path)["services"]
    problems = [
        f"{path.name} {name}: {key} is not declared as read by the service or nginx"
        for name in ("web", "ws", "migrate", "nginx")
        for key in compose.environment(services.get(name, {}))
        if key not in DECLARED or not {SERVICE, NGINX} & set(DECLARED[key].read_by)
    ]
    no_problems(problems)


def test_k8s_config_maps_hold_declared_variables():
    """Every key a kustomization gives chat-config or nginx-env (base, overlays, components)
    is a declared variable."""
    problems = []
    for path in sorted((ROOT / "k8s").rglob("kustomization.yaml")):
        for generator in yaml.safe_load(path.read_text()).get("configMapGenerator") or []:
            if generator["name"] not in ("chat-config", "nginx-env"):
                continue
            names = [item.split("=", 1)[0] for item in generator.get("literals", [])]
            for envs in generator.get("envs", []):
                lines = (path.parent / envs).read_text().splitlines()
                names += [ln.split("=", 1)[0] for ln in lines if re.match(r"^[A-Z]", ln)]
            problems += [f"{path.relative_to(ROOT)}: {n}" for n in names if n not in DECLARED]
    no_problems(problems)


# ---------------------------------------------------------------------------------------------
# The source: the service, the start scripts, scripts/up


def test_service_reads_only_declared_variables():
    """Every environment read in the service's Python (settings, redis_shards, manage.py, the
    ASGI/WSGI entry points, bin/probe) names a declared variable read by `settings`, at its
    declared default; every variable declared as read by `settings` is read."""
    problems, read = [], set()
    for path in service_python_files():
        reads = python_reads(path.read_text())
        read |= {name for _, name, _ in reads}
        problems += read_problems(path.relative_to(ROOT), SERVICE, reads)
    assert len(read) > 40, "the scan found almost nothing: is it still looking at the service?"
    unread = [s.name for s in SETTINGS if SERVICE in s.read_by and s.name not in read]
    no_problems(problems + [f"{name}: declared as read here, but not read" for name in unread])


@pytest.mark.parametrize("reader", sorted(SCRIPTS))
def test_start_script_reads_only_declared_variables(reader):
    """Each start script (services/chat/bin, nginx/start-nginx) reads only declared variables,
    with the declared defaults; every variable declared as read by it is read."""
    reads = shell_reads(SCRIPTS[reader].read_text())
    problems = read_problems(SCRIPTS[reader].relative_to(ROOT), reader, reads)
    unread = [
        s.name
        for s in SETTINGS
        if reader in s.read_by and s.name not in {name for _, name, _ in reads}
    ]
    no_problems(problems + [f"{name}: declared as read here, but not read" for name in unread])


def test_scripts_up_defaults_are_declared():
    """scripts/up's `setting NAME DEFAULT` and `set_env NAME` name variables .env sets, with
    the stack's declared value as default; each variable declared as read by it appears in it."""
    lines = (ROOT / "scripts/up").read_text().splitlines()
    source = "\n".join(re.sub(r"(^|\s)#.*", "", line) for line in lines)  # comments out
    problems = []
    for name, default in re.findall(r"\bsetting ([A-Z][A-Z0-9_]*) (\"[^\"]*\"|[^\s)]+)", source):
        declared = DECLARED.get(name)
        if declared is None or UP not in declared.read_by:
            problems.append(
                f"scripts/up: reads {name}; declare it in chatsite/config.py with {UP!r} in "
                "read_by, then run scripts/gen-config"
            )
        elif default.strip("\"'") != text(declared.stack_value):
            problems.append(
                f"scripts/up: setting {name} {default}, declared {declared.stack_value}"
            )
    for name in re.findall(r"\bset_env ([A-Z][A-Z0-9_]*)", source):
        if name not in DECLARED or DECLARED[name].set_by is not None:
            problems.append(f"scripts/up: writes {name}, not a declared .env variable")
    unread = [
        s.name for s in SETTINGS if UP in s.read_by and not re.search(rf"\b{s.name}\b", source)
    ]
    no_problems(problems + [f"{name}: declared as read here, but not read" for name in unread])


def test_compose_and_k8s_readers_are_real():
    """A variable declared as read by `compose` is interpolated by a compose file; one read by
    `k8s` is in k8s/base/config/nginx.env or chat.env."""
    interpolated = set()
    for path in COMPOSE_FILES:
        interpolated |= compose.variables(compose.raw(path))
    k8s = "".join((ROOT / f"k8s/base/config/{n}.env").read_text() for n in ("chat", "nginx"))
    unread = [s.name for s in SETTINGS if COMPOSE in s.read_by and s.name not in interpolated]
    unread += [s.name for s in SETTINGS if K8S in s.read_by and f"\n{s.name}=" not in k8s]
    no_problems([f"{name}: declared as read here, but not read" for name in unread])


# ---------------------------------------------------------------------------------------------
# The checks can fail: each one, fed a deliberate mistake


def test_python_scan_catches_undeclared_reads_and_drifted_defaults():
    """An env.int("NEW_VAR") added to the service, os.environ/os.getenv reads, a name the scan
    cannot follow and a default other than the declared one are all reported."""
    burst = DECLARED["CHAT_RATE_BURST"].default
    source = (
        "import os\nfrom chatsite.env import env\n"
        'A = env.int("NEW_VAR", 5, minimum=1)\n'
        'B = os.environ.get("OTHER_NEW_VAR")\n'
        'C = os.getenv("THIRD_NEW_VAR", "x")\n'
        f'D = env.int("CHAT_RATE_BURST", {burst + 1})\n'
        "E = env.str(computed_name())\n"
        'F = [env.str(n, None) for n in ("REDIS_URL", "REDIS_URLS")]\n'
        'G = setting("CHAT_MAX_FRAME_BYTES")\n'
    )
    problems = read_problems("x.py", SERVICE, python_reads(source))
    undeclared = "is not declared in chatsite/config.py (declare it, then run scripts/gen-config)"
    assert problems == [
        f"x.py:3: NEW_VAR {undeclared}",
        f"x.py:4: OTHER_NEW_VAR {undeclared}",
        f"x.py:5: THIRD_NEW_VAR {undeclared}",
        f"x.py:6: CHAT_RATE_BURST defaults to {burst + 1} here, config.py declares '{burst}'",
        "x.py:7: a read whose variable name is not a literal",
    ]


def test_shell_scan_catches_undeclared_reads_and_drifted_defaults():
    """A start script reading a new variable, or a declared one at another default, is reported;
    variables the script assigns itself are not reads."""
    timeout = DECLARED["WEB_TIMEOUT"].default
    source = (
        '#!/usr/bin/env bash\n# ${IN_A_COMMENT:-1}\nmode=x\nOWN_VAR=1\necho "$OWN_VAR"\n'
        f'exec server --timeout "${{WEB_TIMEOUT:-{timeout + 1}}}" --new "${{NEW_VAR:-1}}" '
        '"$ALSO_NEW"\n'
    )
    problems = read_problems("start-web", WEB, shell_reads(source))
    undeclared = "is not declared in chatsite/config.py (declare it, then run scripts/gen-config)"
    assert problems == [
        f"start-web:6: WEB_TIMEOUT defaults to '{timeout + 1}' here, config.py declares "
        f"'{timeout}'",
        f"start-web:6: NEW_VAR {undeclared}",
        f"start-web:6: ALSO_NEW {undeclared}",
    ]


def test_compose_check_catches_a_drifted_default_a_missing_and_an_undeclared_variable():
    """compose.yaml's x-django environment with one default changed, one variable dropped, one
    hard-coded and one added is reported four times, each with the line to write."""
    burst, level = (text(DECLARED[n].stack_value) for n in ("CHAT_RATE_BURST", "LOG_LEVEL"))
    environment = dict(compose.raw()["x-django"]["environment"])
    environment["CHAT_RATE_BURST"] = "${CHAT_RATE_BURST:-1" + burst + "}"
    environment["LOG_LEVEL"] = level
    del environment["WEB_TIMEOUT"]
    environment["NEW_VAR"] = "${NEW_VAR:-1}"
    assert sorted(compose_environment_problems(DJANGO, environment)) == [
        "compose.yaml x-django: NEW_VAR is not declared in config.py",
        f"compose.yaml x-django: expected `CHAT_RATE_BURST: ${{CHAT_RATE_BURST:-{burst}}}`, "
        f"found `CHAT_RATE_BURST: ${{CHAT_RATE_BURST:-1{burst}}}`",
        f"compose.yaml x-django: expected `LOG_LEVEL: ${{LOG_LEVEL:-{level}}}`, found "
        f"`LOG_LEVEL: {level}`",
        "compose.yaml x-django: expected `WEB_TIMEOUT: "
        f"${{WEB_TIMEOUT:-{text(DECLARED['WEB_TIMEOUT'].stack_value)}}}`, found none",
    ]
    image = text(DECLARED["PYTHON_IMAGE"].stack_value)
    document = {"services": {"x": {"image": "${PYTHON_IMAGE:-other:1}", "a": "${NEW_VAR}"}}}
    assert interpolation_problems("c.yaml", document) == [
        f"c.yaml: ${{PYTHON_IMAGE:-other:1}}, config.py declares {image!r}",
        "c.yaml: ${NEW_VAR} is not declared in config.py",
    ]


def test_settings_write_no_defaults_of_their_own():
    """settings.py and redis_shards.py read through Env.setting: no default is written there
    (redis_shards' presence test, env.str(name, None), is the one literal)."""
    for path in ("chatsite/settings.py", "chatsite/redis_shards.py"):
        reads = python_reads((SERVICE_DIR / path).read_text())
        literal_defaults = [r for r in reads if r[2] not in (NO_DEFAULT, None)]
        assert literal_defaults == [], f"{path}: defaults belong in config.py: {literal_defaults}"
