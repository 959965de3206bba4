-- Issue 10: what a file's load counted, so nothing disappears without a count.
--   calls_flagged   calls of the file that loaded with quality flags (checks of severity
--                   `flag` they failed, in calls.quality); a subset of calls_loaded, so that
--                   lines = calls_loaded + calls_rejected + calls_duplicate still holds and the
--                   sum of calls_loaded over files is still the number of calls.
-- Nullable without a default: files loaded before it show NULL (not counted then).

ALTER TABLE cdr_files ADD COLUMN calls_flagged integer;
