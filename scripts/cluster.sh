#!/usr/bin/env bash
# make cluster: docker-compose.yaml's services as processes on this machine (Airflow on the
# CeleryExecutor with two workers, Redis, moto's S3, the warehouse on PostgreSQL, OpenSSH's SFTP
# and Dovecot's IMAP for the carriers: `make services` installs them). In the
# foreground until Ctrl-C; `--background` to start and return, `down` to stop. See scripts/cluster.py.
set -euo pipefail
cd "$(dirname "$0")/.."
command -v redis-server >/dev/null 2>&1 || {
  echo "cluster: redis-server is missing: apt-get install redis-server (Debian's package)" >&2
  exit 1
}
exec .venv/bin/python scripts/cluster.py "$@"
