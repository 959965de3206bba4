#!/usr/bin/env bash
# Airflow standalone (scheduler, dag-processor, triggerer, API server on :8080) on this repo's
# dags/ and plugins/, with its home under the state directory and the warehouse connection set.
set -euo pipefail
cd "$(dirname "$0")/.."
export CDRFLOW_STATE_DIR="${CDRFLOW_STATE_DIR:-$PWD/.state}"
export AIRFLOW_HOME="${AIRFLOW_HOME:-$CDRFLOW_STATE_DIR/airflow}"
export AIRFLOW__CORE__DAGS_FOLDER="$PWD/dags"
export AIRFLOW__CORE__PLUGINS_FOLDER="$PWD/plugins"
export AIRFLOW__CORE__LOAD_EXAMPLES=False
# the collectors and the processing DAG run on their schedules from the start (Airflow pauses
# new DAGs by default; a production deployment decides that in its own configuration)
export AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION="${AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION:-False}"
export PATH="$PWD/.venv/bin:$PATH"  # standalone starts its components as `airflow ...`
mkdir -p "$AIRFLOW_HOME"

if [ -z "${AIRFLOW_CONN_CDRFLOW_WAREHOUSE:-}" ] && [ -z "${CDRFLOW_DATABASE_URL:-}" ]; then
  export CDRFLOW_DATABASE_URL=embedded  # nothing configured: the embedded warehouse, chosen here
fi
.venv/bin/cdrflow db upgrade
if [ "${CDRFLOW_DATABASE_URL:-}" = embedded ]; then
  # hand the running embedded server to every task as a connection (its socket URL)
  AIRFLOW_CONN_CDRFLOW_WAREHOUSE="$(.venv/bin/cdrflow db url)"
  export AIRFLOW_CONN_CDRFLOW_WAREHOUSE
  unset CDRFLOW_DATABASE_URL
fi
echo "Airflow home: $AIRFLOW_HOME (admin password: $AIRFLOW_HOME/simple_auth_manager_passwords.json.generated)"
exec .venv/bin/airflow standalone
