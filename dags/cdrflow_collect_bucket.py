"""Airflow DAG: collect new CDR files from upload buckets (s3://) and local drop folders.

Sources come from the carrier configuration (include/carriers.yaml, kind: bucket); the shape of
the DAG is in cdrflow.orchestration.collector_dag. Each registered file is fingerprinted by SHA1: a file
seen before, by any source, is recorded as a duplicate and never loaded twice.
"""

from cdrflow.orchestration.collector_dag import collector_dag

dag = collector_dag("bucket")
