"""Airflow DAG: collect new CDR files from the carriers' mailboxes (IMAP): attachments of messages from allowed senders.

Sources come from the carrier configuration (include/carriers.yaml, kind: mailbox); the shape of
the DAG is in cdrflow.orchestration.collector_dag. Each registered file is fingerprinted by SHA1: a file
seen before, by any source, is recorded as a duplicate and never loaded twice.
"""

from cdrflow.orchestration.collector_dag import collector_dag

dag = collector_dag("mailbox")
