-- Record identity: each format's own key for one record (issue 10). carrier_call_id stays the
-- call, which several records share (Asterisk forks, queues and Local/ chains; FreeSWITCH and
-- Kazoo legs); record_key is what makes one record unique, and the primary key is now
-- (carrier, record_key, start_time). Existing rows keep the key they had, except Asterisk's,
-- which get the key the parser now gives the same line (cdrflow.formats.asterisk_csv), so
-- that a record loaded before this migration and sent again in a later file is still a
-- duplicate: uniqueid#sequence where the file had a sequence, else
-- uniqueid|dstchannel|lastapp|lastdata|disposition|duration|billsec.
-- Partitions: cdrflow_ensure_calls_partition creates a partition OF calls, which takes the
-- parent's primary key as it is when created, so it needs no change.

ALTER TABLE calls ADD COLUMN record_key text;

UPDATE calls c SET record_key = CASE
    WHEN f.file_type IS DISTINCT FROM 'asterisk_csv' THEN c.carrier_call_id
    WHEN coalesce(c.extras ->> 'sequence', '') <> '' THEN c.carrier_call_id || '#' || (c.extras ->> 'sequence')
    ELSE concat_ws('|', c.carrier_call_id, coalesce(c.extras ->> 'dstchannel', ''),
                   coalesce(c.extras ->> 'lastapp', ''), coalesce(c.extras ->> 'lastdata', ''),
                   coalesce(c.disposition, ''), coalesce(c.duration_seconds::text, ''),
                   coalesce(c.billing_seconds::text, ''))
    END
FROM cdr_files f
WHERE f.id = c.file_id;

UPDATE calls SET record_key = carrier_call_id WHERE record_key IS NULL;  -- (a row without its file)

ALTER TABLE calls ALTER COLUMN record_key SET NOT NULL;

-- A refused row names the call it repeated: that call's new key (found by the old one).
ALTER TABLE call_duplicates ADD COLUMN record_key text;

UPDATE call_duplicates d SET record_key = c.record_key
FROM calls c
WHERE c.carrier = d.carrier AND c.carrier_call_id = d.carrier_call_id AND c.start_time = d.start_time;

UPDATE call_duplicates SET record_key = carrier_call_id WHERE record_key IS NULL;

ALTER TABLE call_duplicates ALTER COLUMN record_key SET NOT NULL;

DROP INDEX call_duplicates_key_idx;
CREATE INDEX call_duplicates_key_idx ON call_duplicates (carrier, record_key, start_time);

ALTER TABLE calls DROP CONSTRAINT calls_pkey;
ALTER TABLE calls ADD PRIMARY KEY (carrier, record_key, start_time);
