#!/bin/sh
# /usr/local/bin/redis-server in the redis stand-in: Debian's /usr/bin/redis-server with the
# official image's defaults. That image is compiled with protected mode off; Debian's is not,
# so a compose `command: redis-server --appendonly yes` would answer other containers with
# "DENIED Redis is running in protected mode". The defaults go first, so options given after
# them win. A config file (first argument) decides for itself, as with the official image.
set -eu
case "${1:-}" in
  -v | --version | -h | --help | --test-memory | --check-system | -) exec /usr/bin/redis-server "$@" ;;
  "" | -*) exec /usr/bin/redis-server --protected-mode no --bind '*' '-::*' "$@" ;;
  *) exec /usr/bin/redis-server "$@" ;;
esac
