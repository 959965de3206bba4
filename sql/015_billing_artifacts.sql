-- Issue 11, step 3: the files a billrun leaves behind, and the carriers it closed without.
--
-- After a billrun closes, cdrflow writes one invoice CSV per account it charged and one billrun
-- summary (JSON) to the artifact store (CDRFLOW_ARTIFACT_STORE: a local folder by default, or
-- s3:// and any fsspec URL through Airflow's ObjectStoragePath), and records here where they
-- are. Writing them again (a retried task, `cdrflow bill run` of a period with nothing new)
-- gives the same bytes at the same place and updates the row, never a second one.

CREATE TABLE billrun_artifacts (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    billrun_id  bigint NOT NULL REFERENCES billruns (id),
    account_id  text,
    kind        text NOT NULL CHECK (kind IN ('invoice', 'summary')),
    uri         text NOT NULL,
    bytes       bigint NOT NULL CHECK (bytes >= 0),
    sha1        text NOT NULL CHECK (sha1 ~ '^[0-9a-f]{40}$'),
    created_at  timestamptz NOT NULL DEFAULT now(),
    CHECK ((kind = 'summary') = (account_id IS NULL))
);

CREATE UNIQUE INDEX billrun_artifacts_one_idx ON billrun_artifacts (billrun_id, kind, coalesce(account_id, ''));

COMMENT ON TABLE billrun_artifacts IS
    'Where the files of a closed billrun are: one invoice CSV per account it charged (kind invoice) and one billrun summary JSON (kind summary, account_id NULL), written by cdrflow.billing.artifacts to the artifact store (CDRFLOW_ARTIFACT_STORE).';
COMMENT ON COLUMN billrun_artifacts.id IS 'row id';
COMMENT ON COLUMN billrun_artifacts.billrun_id IS 'the billrun (billruns.id) the file belongs to; each version of a billrun has its own files';
COMMENT ON COLUMN billrun_artifacts.account_id IS 'the account of an invoice (accounts.account_id); NULL for the billrun summary';
COMMENT ON COLUMN billrun_artifacts.kind IS 'invoice (CSV: the account''s invoice lines, totals per currency and every sell charge of the billrun) or summary (JSON: the billrun, its accounts'' totals and its files)';
COMMENT ON COLUMN billrun_artifacts.uri IS 'full URL of the file in the artifact store: file:///... or s3://bucket/...';
COMMENT ON COLUMN billrun_artifacts.bytes IS 'size of the file in bytes';
COMMENT ON COLUMN billrun_artifacts.sha1 IS 'SHA1 of the file''s bytes, hex: a downloaded copy can be checked against it';
COMMENT ON COLUMN billrun_artifacts.created_at IS 'when the file was (last) written';

-- The completeness check of the billing DAGs: carriers with `delivery: daily` that had not
-- delivered the period when the billrun ran (it waited up to its deadline, then went on).
ALTER TABLE billruns ADD COLUMN missing_carriers jsonb NOT NULL DEFAULT '{}'::jsonb;
COMMENT ON COLUMN billruns.missing_carriers IS
    'carriers that had not delivered when the billing DAG ran the billrun after waiting up to its deadline: carrier -> the days (UTC) with no file and no calls; {} when every carrier delivered or the run did not check (cdrflow bill run)';
