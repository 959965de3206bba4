-- Issue 14 (analysts): Great Expectations' Data Docs for each validated file, reachable from the
-- file's page on the operator UI (/cdr/operator/files/{id}/data-docs).
--
-- Loading stores each validated file's result here, in the file's loading transaction, as GX's
-- validation result JSON (the shape of ExpectationSuiteValidationResult.to_json_dict()) merged
-- over the file's chunks, with per check only the summary of GX's SUMMARY result format: rows,
-- missing and unexpected rows with GX's percentages, the first 20 unexpected values with their
-- line numbers and the 20 most common unexpected values with their counts. Never the full
-- unexpected lists: a file with a million failed rows stores a few kilobytes like a clean one.
-- The HTML page is rendered from it on request (cdrflow.validation.data_docs), never while loading.
-- A re-run replaces the row; a re-run that validated nothing (rejected before validation)
-- removes it; a refused re-run leaves the earlier one, like the earlier load.

CREATE TABLE file_validations (
    file_id      bigint PRIMARY KEY REFERENCES cdr_files (id) ON DELETE CASCADE,
    validated_at timestamptz NOT NULL DEFAULT now(),
    suite_name   text NOT NULL,
    success      boolean NOT NULL,
    result       jsonb NOT NULL
);

COMMENT ON TABLE file_validations IS
    'The Great Expectations validation result of each validated file (one row per file, its last load): what its Data Docs page on the operator UI is rendered from (sql/026). Files never validated (duplicates, rejected before validation, loaded before migration 026) have none.';
COMMENT ON COLUMN file_validations.file_id IS 'the file (cdr_files.id)';
COMMENT ON COLUMN file_validations.validated_at IS 'when the load that validated it ran';
COMMENT ON COLUMN file_validations.suite_name IS 'the expectation suite: cdrflow_<file type> (include/cdrflow/validation/expectations/)';
COMMENT ON COLUMN file_validations.success IS 'true when no row of the file failed any expectation (flagged rows count as failures here, as in GX)';
COMMENT ON COLUMN file_validations.result IS 'GX''s validation result JSON (ExpectationSuiteValidationResult.to_json_dict() shape) for the whole file: per expectation its configuration, success and summary counts (element_count, missing_count, unexpected_count, percentages), the first 20 unexpected values with their line numbers and the 20 most common with counts; no full unexpected lists';
