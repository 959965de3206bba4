-- Which file carried a call that was already in the warehouse (refused by the primary key as a
-- duplicate). Written only when that happens (the loader finds these keys when the key refuses a
-- row), so a normal load writes nothing here. Used when a loaded file is reprocessed: a call of
-- that file that another file also carries is handed over to that file instead of deleted.
-- A row lives as long as the load that wrote it: a re-run of the file replaces its rows.
CREATE TABLE call_duplicates (
    file_id         bigint NOT NULL REFERENCES cdr_files (id),  -- the file whose row was refused
    line_number     integer,                                   -- its line in that file
    carrier         text NOT NULL,
    carrier_call_id text NOT NULL,
    start_time      timestamptz NOT NULL
);

CREATE INDEX call_duplicates_key_idx ON call_duplicates (carrier, carrier_call_id, start_time);
CREATE INDEX call_duplicates_file_idx ON call_duplicates (file_id);
