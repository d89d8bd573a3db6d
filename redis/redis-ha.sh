#!/bin/sh
# Start one member of the Redis Sentinel topology (compose.ha.yaml, k8s/components/redis-ha).
# The same file runs in the official redis image and in the Debian stand-in (POSIX sh,
# redis-cli), in compose as a bind mount and in Kubernetes from a ConfigMap.
#
# usage: redis-ha.sh server     a data node: primary or replica, whichever Sentinel says now
#        redis-ha.sh sentinel   a Sentinel of master $REDIS_MASTER_NAME
#
# env:  REDIS_PASSWORD        password of the data nodes and of the Sentinels (required)
#       REDIS_ANNOUNCE_HOST   the name others reach this member by (a compose service, a pod's
#                             stable DNS name); Sentinel hands it to clients, so never an IP
#       REDIS_INITIAL_PRIMARY host[:port] of the data node that is primary on the very first start
#       REDIS_SENTINELS       host:port of every Sentinel, comma separated (asked at start)
#       REDIS_MASTER_NAME     the name Sentinel knows the primary by (default chat)
#       REDIS_PORT (6379), SENTINEL_PORT (26379), REDIS_HA_DIR (/data: the Sentinel's state),
#       REDIS_BIND (every interface: "* -::*"),
#       SENTINEL_DOWN_AFTER_MS, SENTINEL_FAILOVER_TIMEOUT_MS, SENTINEL_QUORUM, REDIS_MAXMEMORY
#
# Why ask the Sentinels first: a data node has no persistence (the channel layer is transient),
# so a restarted former primary must come back as a replica of the node Sentinel promoted,
# never as a second, empty primary. A Sentinel's own state lives in /data/sentinel.conf (a
# volume) so that a restarted Sentinel remembers the promotion too; only the very first start
# of an empty topology falls back to REDIS_INITIAL_PRIMARY.
set -euf  # -f: REDIS_BIND holds "*", never a glob

: "${REDIS_PASSWORD:?REDIS_PASSWORD is required}"
: "${REDIS_ANNOUNCE_HOST:?REDIS_ANNOUNCE_HOST is required (the stable name of this member)}"
: "${REDIS_INITIAL_PRIMARY:?REDIS_INITIAL_PRIMARY is required (the first primary)}"
: "${REDIS_SENTINELS:?REDIS_SENTINELS is required (host:port,host:port,...)}"
master_name=${REDIS_MASTER_NAME:-chat}
port=${REDIS_PORT:-6379}
sentinel_port=${SENTINEL_PORT:-26379}
initial=$REDIS_INITIAL_PRIMARY
case $initial in *:*) ;; *) initial="$initial:6379" ;; esac
export REDISCLI_AUTH="$REDIS_PASSWORD"

log() { printf 'redis-ha: %s\n' "$*" >&2; }

# The primary as host:port, as the first Sentinel that answers knows it (never asking this
# member itself), or nothing.
current_primary() {
  for address in $(printf '%s' "$REDIS_SENTINELS" | tr ',' ' '); do
    [ "$address" = "$REDIS_ANNOUNCE_HOST:$sentinel_port" ] && continue
    reply=$(timeout 2 redis-cli -h "${address%:*}" -p "${address##*:}" --no-auth-warning \
      SENTINEL get-master-addr-by-name "$master_name" 2>/dev/null | tr '\n' ' ') || continue
    # shellcheck disable=SC2086 # split the reply (host, port) on purpose
    set -- $reply
    case ${1:-}:${2:-} in
      :* | *:) continue ;;
      *ERR* | *NOAUTH* | *DENIED* | *WRONGPASS*) continue ;;
    esac
    printf '%s:%s' "$1" "$2"
    return 0
  done
  return 1
}

case ${1:-} in
  server)
    primary=$(current_primary) || primary=$initial
    # shellcheck disable=SC2086 # REDIS_BIND holds several addresses
    set -- --port "$port" --bind ${REDIS_BIND:-* -::*} --requirepass "$REDIS_PASSWORD" --masterauth "$REDIS_PASSWORD" \
      --replica-announce-ip "$REDIS_ANNOUNCE_HOST" --replica-announce-port "$port" \
      --save "" --appendonly no --maxmemory "${REDIS_MAXMEMORY:-200mb}" \
      --maxmemory-policy noeviction
    if [ "$primary" = "$REDIS_ANNOUNCE_HOST:$port" ]; then
      log "starting $REDIS_ANNOUNCE_HOST:$port as the primary of '$master_name'"
      exec redis-server "$@"
    fi
    log "starting $REDIS_ANNOUNCE_HOST:$port as a replica of $primary ('$master_name')"
    exec redis-server "$@" --replicaof "${primary%:*}" "${primary##*:}"
    ;;
  sentinel)
    conf=${REDIS_HA_DIR:-/data}/sentinel.conf
    if [ -s "$conf" ]; then
      log "Sentinel $REDIS_ANNOUNCE_HOST: keeping its state in $conf"
    else
      primary=$(current_primary) || primary=$initial
      log "Sentinel $REDIS_ANNOUNCE_HOST: first start, monitoring $primary as '$master_name'"
      # down-after 3 s: a Redis that does not answer PING for 3 s already costs every sender a
      # broadcast_delayed frame (REDIS_SOCKET_TIMEOUT 1 s); Sentinel's default 30 s would keep
      # broadcasts delayed that long. failover-timeout 30 s (default 180 s): a failed failover
      # is retried sooner. Hostnames, not IPs: containers and pods change addresses.
      umask 077
      cat >"$conf" <<EOF
port $sentinel_port
bind ${REDIS_BIND:-* -::*}
dir ${REDIS_HA_DIR:-/data}
requirepass "$REDIS_PASSWORD"
sentinel sentinel-pass "$REDIS_PASSWORD"
sentinel resolve-hostnames yes
sentinel announce-hostnames yes
sentinel announce-ip $REDIS_ANNOUNCE_HOST
sentinel announce-port $sentinel_port
sentinel monitor $master_name ${primary%:*} ${primary##*:} ${SENTINEL_QUORUM:-2}
sentinel auth-pass $master_name "$REDIS_PASSWORD"
sentinel down-after-milliseconds $master_name ${SENTINEL_DOWN_AFTER_MS:-3000}
sentinel failover-timeout $master_name ${SENTINEL_FAILOVER_TIMEOUT_MS:-30000}
sentinel parallel-syncs $master_name 1
EOF
    fi
    exec redis-server "$conf" --sentinel
    ;;
  *)
    log "expected 'server' or 'sentinel' as the first argument, found '${1:-}'"
    exit 2
    ;;
esac
