-- Issue 12: an account's calls in a time range, found without reading the whole month.
--
-- The CDRs API (seeds 002/003: /accounts/{id}/cdrs over a range), report requests and the
-- operator page ask for legs in a time range, most often one account's. Without an index each
-- such request read every leg of the range's month partitions: 0.8 s at p50 for a page of 50 on
-- a day of 200,000 calls (bench/api_cdrs.py).
--
-- The index leads with start_time, not account_id, on purpose. Calls arrive in time order, so
-- its entries are appended at its right edge and a load pays little for it; an index leading
-- with account_id takes entries all over its pages and cost 38% of the floor of a 1,000,000-row
-- load (bench/row_cost.py, "no account index"). A query for one account reads the range's index
-- entries and checks account_id there, without touching the heap of other accounts' legs: for an
-- hour of a busy day a few thousand index entries.
-- On the partitioned table it is created on every month partition, existing and future. On a
-- warehouse with months of calls this builds the index on each partition in turn (CREATE INDEX
-- on a partitioned parent cannot run CONCURRENTLY): run it in a quiet hour.

CREATE INDEX calls_time_account_idx ON calls (start_time, account_id);

COMMENT ON INDEX calls_time_account_idx IS
    'legs by start time, then account: the CDRs API, report requests and the operator page (sql/025); time first, so loads append to it';
