#!/bin/sh
# Start one member of the Redis Sentinel topology (compose.ha.yaml, k8s/components/redis-ha).
# The same file runs in the official redis image and in the Debian stand-in (POSIX sh,
# redis-cli, timeout, hostname), in compose as a bind mount and in Kubernetes from a ConfigMap.
#
# usage: redis-ha.sh server     a data node: primary or replica, whichever Sentinel says now
#        redis-ha.sh sentinel   a Sentinel of master $REDIS_MASTER_NAME
#
# env:  REDIS_PASSWORD        password of the data nodes and of the Sentinels (required)
#       REDIS_INITIAL_PRIMARY host[:port] of the data node that is primary on the very first start
#       REDIS_SENTINELS       host:port of every Sentinel, comma separated (asked at start)
#       REDIS_MASTER_NAME     the name Sentinel knows the primary by (default chat)
#       REDIS_ANNOUNCE_HOST   this member's stable DNS name (Kubernetes: the pod's name under its
#                             headless Service); members and clients then meet by name. Unset
#                             (compose): by IP address, see below.
#       REDIS_PORT (6379), SENTINEL_PORT (26379), REDIS_HA_DIR (/data: the Sentinel's state),
#       REDIS_BIND (every interface: "* -::*"),
#       SENTINEL_DOWN_AFTER_MS, SENTINEL_FAILOVER_TIMEOUT_MS, SENTINEL_QUORUM, REDIS_MAXMEMORY
#
# Why ask first: a data node has no persistence (the channel layer is transient), so a restarted
# former primary must come back as a replica of the node Sentinel promoted, never as a second,
# empty primary; a restarted Sentinel must monitor the primary of now, not the first one. Only
# when nothing answers (the very first start) is REDIS_INITIAL_PRIMARY the primary, or its own
# primary if it answers as a replica.
#
# Why IP addresses in compose: Docker's DNS forgets a stopped container, and a lookup of its
# name then waits for the upstream resolver (20 s measured on an air-gapped host). Redis
# resolves synchronously, so a replica re-resolving a dead primary's name stops answering and a
# Sentinel doing so enters TILT mode: the failover never happens. Kubernetes' DNS answers a
# missing pod name at once, and pod addresses change, so there members announce names.
set -euf  # -f: REDIS_BIND holds "*", never a glob

: "${REDIS_PASSWORD:?REDIS_PASSWORD is required}"
: "${REDIS_INITIAL_PRIMARY:?REDIS_INITIAL_PRIMARY is required (the first primary)}"
: "${REDIS_SENTINELS:?REDIS_SENTINELS is required (host:port,host:port,...)}"
master_name=${REDIS_MASTER_NAME:-chat}
port=${REDIS_PORT:-6379}
sentinel_port=${SENTINEL_PORT:-26379}
announce=${REDIS_ANNOUNCE_HOST:-}
initial=$REDIS_INITIAL_PRIMARY
case $initial in *:*) ;; *) initial="$initial:6379" ;; esac
export REDISCLI_AUTH="$REDIS_PASSWORD"

log() { printf 'redis-ha: %s\n' "$*" >&2; }

# ask HOST PORT COMMAND...: the reply's words on one line, or failure (2 s at most, DNS included)
ask() {
  host=$1 ask_port=$2
  shift 2
  reply=$(timeout 2 redis-cli -h "$host" -p "$ask_port" --no-auth-warning "$@" 2>/dev/null \
    | tr '\n' ' ') || return 1
  case $reply in "" | *ERR* | *NOAUTH* | *DENIED* | *WRONGPASS* | *LOADING*) return 1 ;; esac
  printf '%s' "$reply"
}

# The primary as host:port: what the first Sentinel that answers says; else the initial primary,
# or the primary it replicates when it answers as a replica.
current_primary() {
  for address in $(printf '%s' "$REDIS_SENTINELS" | tr ',' ' '); do
    if reply=$(ask "${address%:*}" "${address##*:}" SENTINEL get-master-addr-by-name "$master_name"); then
      # shellcheck disable=SC2086 # split the reply (host, port) on purpose
      set -- $reply
      [ $# -eq 2 ] && printf '%s:%s' "$1" "$2" && return 0
    fi
  done
  if reply=$(ask "${initial%:*}" "${initial##*:}" ROLE); then
    # shellcheck disable=SC2086
    set -- $reply
    [ "${1:-}" = slave ] && [ $# -ge 3 ] && printf '%s:%s' "$2" "$3" && return 0
    # By address unless members meet by name: the server says which address it was reached
    # on (laddr), which needs no resolver tool in either image.
    if [ -z "$announce" ] && reply=$(ask "${initial%:*}" "${initial##*:}" CLIENT INFO); then
      for field in $reply; do
        case $field in laddr=*) printf '%s' "${field#laddr=}" && return 0 ;; esac
      done
    fi
  fi
  printf '%s' "$initial"
}

# Is host:port this member? By its announced name; else by its host name (compose sets it to
# the service's name) or any of its addresses.
is_me() {
  [ "${1##*:}" = "$port" ] || return 1
  if [ -n "$announce" ]; then
    [ "${1%:*}" = "$announce" ]
    return
  fi
  for name in $(hostname) $(hostname -i); do [ "${1%:*}" = "$name" ] && return 0; done
  return 1
}

case ${1:-} in
  server)
    primary=$(current_primary)
    set -- --port "$port" --requirepass "$REDIS_PASSWORD" --masterauth "$REDIS_PASSWORD" \
      --save "" --appendonly no --maxmemory "${REDIS_MAXMEMORY:-200mb}" \
      --maxmemory-policy noeviction
    # shellcheck disable=SC2086 # REDIS_BIND holds several addresses
    set -- "$@" --bind ${REDIS_BIND:-* -::*}
    [ -n "$announce" ] && set -- "$@" --replica-announce-ip "$announce" --replica-announce-port "$port"
    if is_me "$primary"; then
      log "starting ${announce:-$(hostname)}:$port as the primary of '$master_name'"
      exec redis-server "$@"
    fi
    log "starting ${announce:-$(hostname)}:$port as a replica of $primary ('$master_name')"
    exec redis-server "$@" --replicaof "${primary%:*}" "${primary##*:}"
    ;;
  sentinel)
    conf=${REDIS_HA_DIR:-/data}/sentinel.conf
    primary=$(current_primary)
    log "Sentinel ${announce:-$(hostname)}: monitoring $primary as '$master_name'"
    # down-after 3 s: a Redis that does not answer PING for 3 s already costs every sender a
    # broadcast_delayed frame (REDIS_SOCKET_TIMEOUT 1 s); Sentinel's default 30 s would keep
    # broadcasts delayed that long. failover-timeout 30 s (default 180 s): a failed failover is
    # tried again sooner. Names only when members meet by name: Sentinel re-resolves a name at
    # every reconnect, synchronously (TILT above).
    umask 077
    {
      printf 'port %s\nbind %s\ndir %s\n' "$sentinel_port" "${REDIS_BIND:-* -::*}" "${REDIS_HA_DIR:-/data}"
      printf 'requirepass "%s"\nsentinel sentinel-pass "%s"\n' "$REDIS_PASSWORD" "$REDIS_PASSWORD"
      if [ -n "$announce" ]; then
        printf 'sentinel resolve-hostnames yes\nsentinel announce-hostnames yes\n'
        printf 'sentinel announce-ip %s\nsentinel announce-port %s\n' "$announce" "$sentinel_port"
      else
        case ${primary%:*} in
          *[!0-9a-fA-F.:]*) log "expected the primary's address, found the name ${primary%:*} (not reachable yet?)"; exit 1 ;;
        esac
      fi
      printf 'sentinel monitor %s %s %s %s\n' "$master_name" "${primary%:*}" "${primary##*:}" \
        "${SENTINEL_QUORUM:-2}"
      printf 'sentinel auth-pass %s "%s"\n' "$master_name" "$REDIS_PASSWORD"
      printf 'sentinel down-after-milliseconds %s %s\n' "$master_name" "${SENTINEL_DOWN_AFTER_MS:-3000}"
      printf 'sentinel failover-timeout %s %s\n' "$master_name" "${SENTINEL_FAILOVER_TIMEOUT_MS:-30000}"
      printf 'sentinel parallel-syncs %s 1\n' "$master_name"
    } >"$conf"
    exec redis-server "$conf" --sentinel
    ;;
  *)
    log "expected 'server' or 'sentinel' as the first argument, found '${1:-}'"
    exit 2
    ;;
esac
