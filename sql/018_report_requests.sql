-- Issue 12, seed 001: CDR report requests (Telnyx v1 `/reporting/cdr_requests`).
--
-- A request is a row, Pending (1) when created through the API. The report DAG (or
-- `cdrflow reports build`) claims one pending row at a time (FOR UPDATE SKIP LOCKED; the claim is
-- a lease renewed while the build runs), writes the CSV to the artifact store and marks it
-- Complete (2) with its size, SHA-256 and expiry (completion + 30 days), or Failed (3) with a
-- reason. Housekeeping deletes expired artefacts and marks their requests Expired (4).

CREATE TABLE report_requests (
    id             uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    account_id     text CHECK (account_id <> ''),
    start_time     timestamptz NOT NULL,
    end_time       timestamptz NOT NULL,
    call_types     smallint[] NOT NULL DEFAULT '{1}',
    record_types   smallint[] NOT NULL DEFAULT '{1}',
    connections    text[] NOT NULL DEFAULT '{}',
    report_name    text NOT NULL DEFAULT '',
    source         text CHECK (source IN ('calls', 'call-control', 'fax-api', 'webrtc')),
    filters        jsonb NOT NULL DEFAULT '[]'::jsonb,
    gzip           boolean NOT NULL DEFAULT false,
    status         smallint NOT NULL DEFAULT 1 CHECK (status BETWEEN 1 AND 4),
    failure_reason text,
    artifact_uri   text,
    bytes          bigint CHECK (bytes >= 0),
    sha256         char(64) CHECK (sha256 ~ '^[0-9a-f]{64}$'),
    row_count      bigint CHECK (row_count >= 0),
    completed_at   timestamptz,
    expires_at     timestamptz,
    claimed_by     text,
    claimed_at     timestamptz,
    attempts       integer NOT NULL DEFAULT 0,
    created_by     bigint,   -- api_credentials.id of the caller (no FK: a revoked credential's requests stay)
    created_at     timestamptz NOT NULL DEFAULT now(),
    updated_at     timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT report_requests_range CHECK (start_time < end_time),
    CONSTRAINT report_requests_complete CHECK (
        status <> 2 OR (artifact_uri IS NOT NULL AND bytes IS NOT NULL AND sha256 IS NOT NULL
                        AND completed_at IS NOT NULL AND expires_at IS NOT NULL)),
    CONSTRAINT report_requests_failed CHECK (status <> 3 OR failure_reason IS NOT NULL)
);

-- "Pending first": the builders' claim reads this small index in creation order.
CREATE INDEX report_requests_pending_idx ON report_requests (created_at, id) WHERE status = 1;
-- Per-account listing, newest first (an operator's list uses the second index).
CREATE INDEX report_requests_account_idx ON report_requests (account_id, created_at DESC, id);
CREATE INDEX report_requests_created_idx ON report_requests (created_at DESC, id);
-- Housekeeping: complete reports whose 30 days are over.
CREATE INDEX report_requests_expiry_idx ON report_requests (expires_at) WHERE status = 2;

COMMENT ON TABLE report_requests IS
    'Seed 001 CDR report requests: the request, its build (claim, status) and its artefact in the artifact store.';
COMMENT ON COLUMN report_requests.account_id IS 'the account whose calls the report holds; NULL: an operator''s report over every account';
COMMENT ON COLUMN report_requests.call_types IS '1 inbound, 2 outbound (calls.direction)';
COMMENT ON COLUMN report_requests.record_types IS '1 complete, 2 incomplete (calls.record_type), 3 errors (calls of record_type error and quarantined rows)';
COMMENT ON COLUMN report_requests.filters IS 'the cli/cld/tags_list filters, normalised; combined as a left fold from TRUE (api-contract.md A2.5 item 1)';
COMMENT ON COLUMN report_requests.gzip IS 'cdrflow extension: the report is stored and served gzip-compressed (.csv.gz)';
COMMENT ON COLUMN report_requests.status IS '1 Pending, 2 Complete, 3 Failed, 4 Expired (the API also shows 4 once expires_at has passed)';
COMMENT ON COLUMN report_requests.artifact_uri IS 'the report file in the artifact store (CDRFLOW_ARTIFACT_STORE); never handed to clients';
COMMENT ON COLUMN report_requests.sha256 IS 'SHA-256 of the stored bytes (what a download sends)';
COMMENT ON COLUMN report_requests.claimed_at IS 'the builder''s lease: renewed while it builds; a pending request whose lease ran out is taken again';
COMMENT ON COLUMN report_requests.attempts IS 'builds started; after 3 that never finished (the worker died) the request is marked Failed';
