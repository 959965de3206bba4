#!/usr/bin/env bash
# Airflow standalone (scheduler, dag-processor, triggerer, API server on :8080) on this repo's
# dags/ and plugins/, with its home under the state directory and the warehouse connection set.
#
# Ready when started: every cdrflow DAG runs on its schedule. New DAGs start unpaused
# (DAGS_ARE_PAUSED_AT_CREATION=False below), but that setting only applies to DAGs Airflow does
# not know yet, and `make demo`'s `airflow dags test` registers the DAGs it sees *paused*. So
# before starting, this script lists the cdrflow DAGs that are paused and, with
# CDRFLOW_UNPAUSE=all (the default), unpauses them; with CDRFLOW_UNPAUSE=none it leaves every
# toggle as it is and says which DAGs will not run and how to change that.
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
UNPAUSE="${CDRFLOW_UNPAUSE:-all}"
case "$UNPAUSE" in
  all|none) ;;
  *) echo "CDRFLOW_UNPAUSE=$UNPAUSE: expected all (unpause cdrflow's DAGs at start) or none (leave them)" >&2; exit 2 ;;
esac
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

# The cdrflow DAGs Airflow already knows as paused (none in a new Airflow home).
paused_dags() {
  .venv/bin/airflow dags list -o json --columns dag_id,is_paused 2>/dev/null | .venv/bin/python -c '
import json, sys
lines = [line for line in sys.stdin.read().splitlines() if line.startswith("[{") or line == "[]"]
rows = json.loads(lines[-1]) if lines else []
print(" ".join(sorted(r["dag_id"] for r in rows if r["dag_id"].startswith("cdrflow_") and str(r["is_paused"]) == "True")))
'
}

paused="" listed=yes
if [ -f "$AIRFLOW_HOME/airflow.db" ] || [ -n "${AIRFLOW__DATABASE__SQL_ALCHEMY_CONN:-}" ]; then
  .venv/bin/airflow db migrate >/dev/null 2>&1 || true  # standalone would; `dags list` needs it
  paused="$(paused_dags)" || listed=no
fi
echo
if [ "$listed" = no ]; then
  echo "cdrflow DAGs: could not read which are paused (airflow dags list failed); check the toggles on the Dags page"
elif [ -z "$paused" ]; then
  echo "cdrflow DAGs: none paused; the collectors, processing and billing run on their schedules."
elif [ "$UNPAUSE" = all ]; then
  if .venv/bin/airflow dags unpause --treat-dag-id-as-regex -y '^cdrflow_' >/dev/null 2>&1; then
    echo "cdrflow DAGs: unpaused at start (they were paused, e.g. by make demo's 'airflow dags test'): $paused"
    echo "  To leave the pause toggles as they are at the next start: CDRFLOW_UNPAUSE=none make airflow"
  else
    echo "cdrflow DAGs PAUSED, and unpausing them failed (they will NOT run on their schedules): $paused"
    echo "  Unpause them with their toggles on the Dags page"
  fi
else
  echo "cdrflow DAGs PAUSED (they will NOT run on their schedules): $paused"
  echo "  Unpause one: its toggle on the Dags page, or AIRFLOW_HOME=$AIRFLOW_HOME .venv/bin/airflow dags unpause DAG_ID"
  echo "  Unpause all of them at start: make airflow (CDRFLOW_UNPAUSE=all is the default)"
fi
echo "Airflow home: $AIRFLOW_HOME (admin password: $AIRFLOW_HOME/simple_auth_manager_passwords.json.generated)"
echo
exec .venv/bin/airflow standalone
