# The cdrflow image: the official Airflow image of the version requirements.txt pins, with cdrflow's
# pinned dependencies (Great Expectations, the providers, Celery) and the package itself.
# docker-compose.yaml builds it (`docker compose up --build`); every Airflow service runs it.
FROM apache/airflow:3.3.2-python3.11

USER root
# The package, its migrations and its mapping files live in /opt/cdrflow; the state directory
# there is where the compose file mounts the shared cdrflow-state volume (owned by airflow, so a
# new volume starts writable).
RUN mkdir -p /opt/cdrflow/state && chown -R airflow:0 /opt/cdrflow
USER airflow

# Dependencies first (a layer that changes only with requirements.txt), then the code.
COPY --chown=airflow:0 requirements.txt /opt/cdrflow/requirements.txt
RUN pip install --no-cache-dir -r /opt/cdrflow/requirements.txt

COPY --chown=airflow:0 pyproject.toml README.md /opt/cdrflow/
COPY --chown=airflow:0 include /opt/cdrflow/include
COPY --chown=airflow:0 sql /opt/cdrflow/sql
COPY --chown=airflow:0 mappings /opt/cdrflow/mappings
COPY --chown=airflow:0 dags /opt/airflow/dags
COPY --chown=airflow:0 plugins /opt/airflow/plugins
# Editable, without re-resolving the pinned set: cdrflow finds sql/ and mappings/ beside include/.
RUN pip install --no-cache-dir --no-deps -e /opt/cdrflow

ENV CDRFLOW_SQL_DIR=/opt/cdrflow/sql \
    CDRFLOW_STATE_DIR=/opt/cdrflow/state
