"""Where cdrflow keeps its state, and which warehouse and raw store it uses.

Every setting comes from the environment so that Airflow workers, the CLI and the tests
agree without a config file:

- ``CDRFLOW_STATE_DIR``: local state (embedded PostgreSQL data, raw store, Airflow home).
  Default: ``.state/`` in the repository, git-ignored.
- ``CDRFLOW_DATABASE_URL``: the warehouse, as an SQLAlchemy or libpq URL, or ``embedded`` for
  an embedded PostgreSQL server under the state directory. When it is not set, the Airflow
  connection ``cdrflow_warehouse`` is used; nothing configured is an error (the full order of
  precedence is in :mod:`cdrflow.warehouse.db`).
- ``CDRFLOW_RAW_STORE``: where original bytes are kept, content-addressed by SHA1; any
  ``ObjectStoragePath`` URL (``file:///...``, ``s3://bucket/prefix`` or
  ``s3://aws_conn_id@bucket/prefix``). Default: ``<state>/raw``.
- ``CDRFLOW_ARTIFACT_STORE``: where billruns' invoice files and summaries are written; any
  ``ObjectStoragePath`` URL, as for the raw store. Default: ``<state>/artifacts``.
"""

from __future__ import annotations

import os
from pathlib import Path

PACKAGE_DIR = Path(__file__).resolve().parent.parent  # include/cdrflow
# include/cdrflow -> repository root (the package is installed in editable mode from the repo)
REPO_DIR = PACKAGE_DIR.parent.parent
SQL_DIR = Path(os.environ.get("CDRFLOW_SQL_DIR", REPO_DIR / "sql"))

WAREHOUSE_CONN_ID = "cdrflow_warehouse"


def state_dir() -> Path:
    """The local state directory, created on first use."""
    configured = os.environ.get("CDRFLOW_STATE_DIR")
    if configured:
        path = Path(configured)
    elif (REPO_DIR / "pyproject.toml").exists():
        path = REPO_DIR / ".state"
    else:  # installed outside a checkout
        path = Path.home() / ".local" / "state" / "cdrflow"
    path.mkdir(parents=True, exist_ok=True)
    return path.resolve()


def raw_store_url() -> str:
    """The base URL of the content-addressed raw store."""
    return os.environ.get("CDRFLOW_RAW_STORE") or (state_dir() / "raw").as_uri()


def artifact_store_url() -> str:
    """The base URL of the artifact store (billruns' invoice CSVs and summaries)."""
    return os.environ.get("CDRFLOW_ARTIFACT_STORE") or (state_dir() / "artifacts").as_uri()
