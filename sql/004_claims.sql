-- Claims: which processing run has taken a received file. The processing DAG claims files with
-- FOR UPDATE SKIP LOCKED, so two overlapping runs never take the same file; a claim older than
-- its lease (a run that died) may be taken again. The loader still locks the file's row and
-- checks its status in the loading transaction, so even a stale claim cannot load a file twice.
-- A table of its own: claiming is bookkeeping, not a change of the file's record (cdr_files'
-- revision number stays the seed's revision of the record).
CREATE TABLE file_claims (
    file_id    bigint PRIMARY KEY REFERENCES cdr_files (id),
    run_id     text NOT NULL,
    claimed_at timestamptz NOT NULL DEFAULT now()
);

CREATE INDEX cdr_files_received_idx ON cdr_files (id) WHERE status = 'received';
