#!/usr/bin/env bash
# Entrypoint of the postgres stand-in, emulating the official postgres image's on first start:
# POSTGRES_USER (postgres), POSTGRES_PASSWORD, POSTGRES_DB ($POSTGRES_USER), PGDATA,
# POSTGRES_INITDB_ARGS, POSTGRES_INITDB_WALDIR, POSTGRES_HOST_AUTH_METHOD (scram-sha-256) and
# /docker-entrypoint-initdb.d/*.sql, *.sql.gz, *.sh (run if executable, else sourced).
# Started as root it fixes ownership and drops to postgres with setpriv; started as postgres
# (uid 999) it runs as is, so a read-only root works given tmpfs on /var/run/postgresql.
# Not emulated: *_FILE secrets, nss_wrapper for arbitrary uids, *.sql.xz/*.sql.zst.
#
# usage: docker-entrypoint.sh postgres [OPTION...]   (or any other command, run as is)
set -Eeuo pipefail
[[ -n "${DEBUG:-}" ]] && set -x
die() { printf 'docker-entrypoint.sh: %s\n' "$*" >&2; exit 1; }

if [[ ${1:-} == -* ]]; then set -- postgres "$@"; fi
[[ ${1:-} == postgres ]] || exec "$@"
for arg; do
  case $arg in -V | --version | -\? | --help | --describe-config) exec "$@" ;; esac
done

if [[ $(id -u) -eq 0 ]]; then
  mkdir -p "$PGDATA" /var/run/postgresql
  find "$PGDATA" /var/run/postgresql \! -user postgres -exec chown postgres:postgres '{}' +
  chmod 700 "$PGDATA"
  chmod 3775 /var/run/postgresql
  exec setpriv --reuid=postgres --regid=postgres --init-groups \
    env HOME=/var/lib/postgresql "${BASH_SOURCE[0]}" "$@"
fi

# As postgres: the directories may be a fresh volume or a tmpfs that we cannot chmod.
mkdir -p "$PGDATA" || die "expected to create PGDATA=$PGDATA as uid $(id -u), found no permission"
chmod 700 "$PGDATA" 2>/dev/null || true
[[ -w /var/run/postgresql ]] \
  || die "expected /var/run/postgresql writable by uid $(id -u) (a tmpfs under a read-only root), found $(stat -c '%a %U' /var/run/postgresql)"

if [[ ! -s $PGDATA/PG_VERSION ]]; then
  POSTGRES_USER=${POSTGRES_USER:-postgres}
  POSTGRES_DB=${POSTGRES_DB:-$POSTGRES_USER}
  auth=${POSTGRES_HOST_AUTH_METHOD:-scram-sha-256}
  [[ -n ${POSTGRES_PASSWORD:-} || $auth == trust ]] \
    || die "expected POSTGRES_PASSWORD (or POSTGRES_HOST_AUTH_METHOD=trust) to initialise $PGDATA, found neither"
  # Checked before initdb: a half-initialised PGDATA would skip the scripts on the next start.
  [[ -r /docker-entrypoint-initdb.d && -x /docker-entrypoint-initdb.d ]] \
    || die "expected /docker-entrypoint-initdb.d readable by uid $(id -u), found $(stat -c '%a %U' /docker-entrypoint-initdb.d)"
  initdb_args=(--username="$POSTGRES_USER" --encoding=UTF8 --locale=C.UTF-8)
  [[ -z ${POSTGRES_PASSWORD:-} ]] || initdb_args+=(--pwfile=/dev/stdin)   # never on disk
  [[ -z ${POSTGRES_INITDB_WALDIR:-} ]] || initdb_args+=(--waldir="$POSTGRES_INITDB_WALDIR")
  # shellcheck disable=SC2086  # POSTGRES_INITDB_ARGS is a list of options, split on purpose
  initdb -D "$PGDATA" "${initdb_args[@]}" ${POSTGRES_INITDB_ARGS:-} <<<"${POSTGRES_PASSWORD:-}"
  printf "listen_addresses = '*'\n" >>"$PGDATA/postgresql.conf"
  printf 'host all all all %s\n' "$auth" >>"$PGDATA/pg_hba.conf"

  # A socket-only server for the setup, as the official image does.
  pg_ctl -D "$PGDATA" -o "-c listen_addresses='' -p ${PGPORT:-5432}" -w start
  export PGPASSWORD=${PGPASSWORD:-${POSTGRES_PASSWORD:-}}
  q() { psql -v ON_ERROR_STOP=1 --no-psqlrc --no-password --username "$POSTGRES_USER" "$@"; }
  if [[ -z $(q --dbname postgres --set db="$POSTGRES_DB" -At <<<"SELECT 1 FROM pg_database WHERE datname = :'db'") ]]; then
    q --dbname postgres --set db="$POSTGRES_DB" <<<'CREATE DATABASE :"db";'
  fi
  for f in /docker-entrypoint-initdb.d/*; do
    case $f in
      *.sh)
        if [[ -x $f ]]; then printf '%s: running %s\n' "$0" "$f"; "$f"
        else printf '%s: sourcing %s\n' "$0" "$f"
          # shellcheck disable=SC1090  # init scripts are sourced, as by the official image
          . "$f"
        fi ;;
      *.sql) printf '%s: running %s\n' "$0" "$f"; q --dbname "$POSTGRES_DB" -f "$f" ;;
      *.sql.gz) printf '%s: running %s\n' "$0" "$f"; gunzip -c "$f" | q --dbname "$POSTGRES_DB" ;;
      *) [[ ! -e $f ]] || printf '%s: ignoring %s\n' "$0" "$f" ;;
    esac
  done
  pg_ctl -D "$PGDATA" -m fast -w stop
  unset PGPASSWORD
  printf '%s: PostgreSQL init process complete; ready for start up.\n' "$0"
fi

exec "$@"
