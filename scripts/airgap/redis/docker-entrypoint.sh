#!/bin/sh
# Entrypoint of the redis stand-in, as the official image's: options or a *.conf file as the
# command start redis-server with them (`docker run IMAGE --appendonly yes`).
set -eu
case "${1:-}" in
  -* | *.conf) set -- redis-server "$@" ;;
esac
exec "$@"
