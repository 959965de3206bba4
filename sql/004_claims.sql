-- Claims: which processing run has taken a received file. The processing DAG claims files with
-- FOR UPDATE SKIP LOCKED, so two overlapping runs never take the same file; a claim older than
-- its lease (a run that died) may be taken again. The loader still locks the file's row and
-- checks its status in the loading transaction, so even a stale claim cannot load a file twice.
ALTER TABLE cdr_files
    ADD COLUMN claimed_by text,
    ADD COLUMN claimed_at timestamptz;

CREATE INDEX cdr_files_received_idx ON cdr_files (id) WHERE status = 'received';
