-- Two loaders may need the same new month partition at the same moment (files of one carrier
-- load concurrently). The second waits for the first's advisory lock, but its catalog
-- snapshot may predate the first's commit: it then tries to create the partition again.
-- Treat "already exists" as what it is: the partition is there.
CREATE OR REPLACE FUNCTION cdrflow_ensure_calls_partition(ts timestamptz) RETURNS text
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
        BEGIN
            EXECUTE format('CREATE TABLE %I PARTITION OF calls FOR VALUES FROM (%L) TO (%L)',
                           part_name, month_start, month_start + interval '1 month');
        EXCEPTION WHEN duplicate_table THEN
            NULL;  -- created by a loader that committed while this one waited
        END;
    END IF;
    RETURN part_name;
END
$$;
