-- Issue 12: an account's calls in a time range, found without reading the whole month.
--
-- The CDRs API (seeds 002/003: /accounts/{id}/cdrs over a range), report requests of one account
-- and the operator page all ask for one account's legs in a time range. Without an index on
-- account_id each such request read every leg of the range's month partitions: 0.8 s at p50 for
-- a page of 50 on a day of 200,000 calls, and under 200 concurrent clients the API's connection
-- pool ran dry (bench/api_cdrs.py). With it a page is a short index range scan.
-- The cost is one more index maintained by every load (bench/row_cost.py measures each index);
-- on the partitioned table it is created on every month partition, existing and future. On a
-- warehouse with months of calls this migration builds the index on each partition in turn
-- (CREATE INDEX on a partitioned parent cannot run CONCURRENTLY): run it in a quiet hour.

CREATE INDEX calls_account_time_idx ON calls (account_id, start_time);

COMMENT ON INDEX calls_account_time_idx IS
    'an account''s legs by start time: the CDRs API, report requests and the operator page (sql/025)';
