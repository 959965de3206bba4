-- Canonical call legs, partitioned by month of start_time, and the quarantine of rejected rows.

CREATE SEQUENCE calls_id_seq AS bigint;

CREATE TABLE calls (
    id                bigint NOT NULL DEFAULT nextval('calls_id_seq'),  -- cursor of the billing feed
    carrier           text NOT NULL,    -- carriers.code (no FK: see below)
    carrier_call_id   text NOT NULL,
    start_time        timestamptz NOT NULL,
    file_id           bigint NOT NULL,  -- cdr_files.id (no FK: see below)
    line_number       integer,
    other_leg_call_id text,
    direction         text CHECK (direction IN ('inbound', 'outbound')),
    answer_time       timestamptz,
    end_time          timestamptz,
    duration_seconds  integer CHECK (duration_seconds >= 0),
    billing_seconds   integer CHECK (billing_seconds >= 0),
    ringing_seconds   integer CHECK (ringing_seconds >= 0),
    caller_number     text,
    caller_name       text,
    callee_number     text,
    callee_name       text,
    from_uri          text,
    to_uri            text,
    hangup_cause      text,
    hangup_code       integer,          -- SIP response code of the hangup
    disposition       text,
    account_id        text,
    user_id           text,
    realm             text,
    authorizing_id    text,
    connection        text,
    tags              text[],
    call_type         text,
    call_sub_type     text,
    record_type       text CHECK (record_type IN ('complete', 'incomplete', 'error')),
    extras            jsonb NOT NULL DEFAULT '{}'::jsonb,   -- every source field without a column
    rate              numeric(14, 6),
    cost              numeric(14, 6),
    rated_billrun     text,
    rated_at          timestamptz,
    loaded_at         timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (carrier, carrier_call_id, start_time)
) PARTITION BY RANGE (start_time);

ALTER SEQUENCE calls_id_seq OWNED BY calls.id;

-- calls has no foreign keys on purpose: a row-level FK check per loaded call costs more than
-- the COPY itself, and the loader is the only writer (it takes carrier and file id from the
-- cdr_files row it holds locked). rejected_rows keeps its FK: it is small.

-- A file's calls are written together, so a BRIN index finds them at a fraction of the cost
-- of a B-tree on every COPY.
CREATE INDEX calls_file_idx ON calls USING brin (file_id);

-- Creates the month partition holding ts when it does not exist yet, and returns its name.
-- Safe when several loaders call it at once (transaction-scoped advisory lock).
CREATE FUNCTION cdrflow_ensure_calls_partition(ts timestamptz) RETURNS text
LANGUAGE plpgsql AS $$
DECLARE
    month_start timestamptz := date_trunc('month', ts AT TIME ZONE 'UTC') AT TIME ZONE 'UTC';
    part_name   text := 'calls_' || to_char(ts AT TIME ZONE 'UTC', 'YYYY_MM');
BEGIN
    IF to_regclass(format('%I', part_name)) IS NOT NULL THEN
        RETURN part_name;
    END IF;
    PERFORM pg_advisory_xact_lock(hashtext('cdrflow.calls_partition'));
    IF to_regclass(format('%I', part_name)) IS NULL THEN
        EXECUTE format('CREATE TABLE %I PARTITION OF calls FOR VALUES FROM (%L) TO (%L)',
                       part_name, month_start, month_start + interval '1 month');
    END IF;
    RETURN part_name;
END
$$;

CREATE TABLE rejected_rows (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    file_id     bigint NOT NULL REFERENCES cdr_files (id),
    line_number integer NOT NULL,
    raw_text    text,            -- the line as text (invalid bytes replaced)
    raw_bytes   bytea,           -- the exact bytes when they are not valid in the file's encoding
    reasons     text[] NOT NULL, -- names of the failed expectations / parse errors
    created_at  timestamptz NOT NULL DEFAULT now()
);

CREATE INDEX rejected_rows_file_idx ON rejected_rows (file_id, line_number);
