-- The file registry (seed 000 "CDR Files"), carriers and file types.
-- Column names are the seed's fields in snake_case (fileName -> file_name, ...);
-- the API maps them back to the seed's camelCase names.

CREATE TABLE file_types (
    code        text PRIMARY KEY,
    description text NOT NULL
);

INSERT INTO file_types (code, description) VALUES
    ('kazoo_json',       'Kazoo / 2600Hz CDR JSON (array, {"data": [...]} envelope or JSON lines)'),
    ('asterisk_csv',     'Asterisk cdr_csv Master.csv'),
    ('freeswitch_csv',   'FreeSWITCH mod_cdr_csv, default template'),
    ('telnyx_csv',       'Telnyx-style CDR report CSV with header'),
    ('billing_feed_csv', 'Billing feed CSV (seed 004 call types)'),
    ('mapped',           'Generic delimited file described by a YAML mapping');

CREATE TABLE carriers (
    code             text PRIMARY KEY CHECK (code ~ '^[a-z0-9][a-z0-9_.-]*$'),
    name             text NOT NULL,
    file_type        text REFERENCES file_types (code),
    mapping          text,
    billable         boolean NOT NULL DEFAULT true,
    delivery         text NOT NULL DEFAULT 'daily' CHECK (delivery IN ('daily', 'monthly')),
    reject_threshold numeric(5, 4) NOT NULL DEFAULT 0.05 CHECK (reject_threshold BETWEEN 0 AND 1),
    config           jsonb NOT NULL DEFAULT '{}'::jsonb,
    created_at       timestamptz NOT NULL DEFAULT now(),
    updated_at       timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE cdr_files (
    id                   bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    file_name            text NOT NULL,
    stored_file_id       text NOT NULL,              -- content address in the raw store
    uploaded_date        timestamptz NOT NULL DEFAULT now(),
    file_source          text NOT NULL
                         CHECK (file_source IN ('upload', 'email', 'sftp', 'ftp', 'bucket', 'api')),
    carrier              text NOT NULL REFERENCES carriers (code),
    file_type            text REFERENCES file_types (code),
    billing              boolean NOT NULL DEFAULT true,
    daily                boolean NOT NULL DEFAULT true,  -- false: a monthly file
    billrun              text,
    notes                text,
    mail_message         text,
    mail_from            text,
    mail_to              text,
    mail_subject         text,
    status               text NOT NULL DEFAULT 'received'
                         CHECK (status IN ('received', 'processing', 'loaded', 'failed',
                                           'rejected', 'duplicate')),
    file_path            text NOT NULL,              -- where the raw bytes are stored (URL)
    original_hash        char(40) NOT NULL CHECK (original_hash ~ '^[0-9a-f]{40}$'),
    duplicate_of         bigint REFERENCES cdr_files (id),
    file_size            bigint NOT NULL CHECK (file_size >= 0),
    lines                integer,
    file_processed_stamp timestamptz,
    processing_log       text NOT NULL DEFAULT '',
    revision_number      integer NOT NULL DEFAULT 1,
    source_uri           text,                       -- where the collector found it (no secrets)
    created_at           timestamptz NOT NULL DEFAULT now(),
    updated_at           timestamptz NOT NULL DEFAULT now(),
    -- a duplicate always points at its original and an original never points anywhere
    CONSTRAINT cdr_files_duplicate_link CHECK ((status = 'duplicate') = (duplicate_of IS NOT NULL))
);

-- Exactly one original per SHA1; duplicates share the hash and point at that original.
CREATE UNIQUE INDEX cdr_files_original_hash_uq ON cdr_files (original_hash) WHERE duplicate_of IS NULL;
CREATE INDEX cdr_files_status_idx ON cdr_files (status) WHERE status IN ('received', 'processing', 'failed');
CREATE INDEX cdr_files_carrier_idx ON cdr_files (carrier, uploaded_date);
CREATE INDEX cdr_files_created_idx ON cdr_files (created_at);
CREATE INDEX cdr_files_updated_idx ON cdr_files (updated_at);

-- Every change bumps the revision and the update stamp; the processing log may only grow.
CREATE FUNCTION cdr_files_before_update() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF left(NEW.processing_log, length(OLD.processing_log)) IS DISTINCT FROM OLD.processing_log THEN
        RAISE EXCEPTION 'cdr_files.processing_log of file % is append-only', OLD.id
            USING ERRCODE = 'check_violation';
    END IF;
    IF NEW.original_hash IS DISTINCT FROM OLD.original_hash THEN
        RAISE EXCEPTION 'cdr_files.original_hash of file % cannot change', OLD.id
            USING ERRCODE = 'check_violation';
    END IF;
    NEW.revision_number := OLD.revision_number + 1;
    NEW.updated_at := clock_timestamp();
    RETURN NEW;
END
$$;

CREATE TRIGGER cdr_files_before_update BEFORE UPDATE ON cdr_files
    FOR EACH ROW EXECUTE FUNCTION cdr_files_before_update();

CREATE FUNCTION carriers_touch() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    NEW.updated_at := clock_timestamp();
    RETURN NEW;
END
$$;

CREATE TRIGGER carriers_touch BEFORE UPDATE ON carriers
    FOR EACH ROW EXECUTE FUNCTION carriers_touch();
