-- What loading a file did, next to its status: calls loaded, rows rejected, calls that were
-- already in the warehouse (or twice in the file) and so counted as duplicates.
ALTER TABLE cdr_files
    ADD COLUMN calls_loaded    integer,
    ADD COLUMN calls_rejected  integer,
    ADD COLUMN calls_duplicate integer;

-- Calls per carrier and UTC day, kept by the loader in the same transaction as the calls.
-- The loader looks up existing call keys only for days that already hold calls of the carrier,
-- so a file of new days loads at COPY speed. Analysts: daily volumes without scanning calls.
CREATE TABLE call_days (
    carrier text NOT NULL REFERENCES carriers (code),
    day     date NOT NULL,
    calls   bigint NOT NULL CHECK (calls >= 0),
    PRIMARY KEY (carrier, day)
);

-- Members of a .zip or .gz archive are files of their own; they point at the archive.
ALTER TABLE cdr_files ADD COLUMN parent_id bigint REFERENCES cdr_files (id);
CREATE INDEX cdr_files_parent_idx ON cdr_files (parent_id) WHERE parent_id IS NOT NULL;
