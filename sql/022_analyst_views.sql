-- Issue 14: the questions analysts ask first, as documented views and functions, and a COMMENT on
-- every table, view, column and function of the warehouse (the data dictionary, docs/data-dictionary.md,
-- is generated from them by `cdrflow db dictionary`; tests/test_data_dictionary.py keeps both true).
--
-- What is a call here: a row of call_summaries (sql/010: the legs of one call count once), dated by
-- the start of its first leg; answered when one of its legs answered; its billing seconds are its
-- talk_seconds (the billable leg's billing seconds, or the legs' sum for every_leg and merged).
-- Its account, caller and callee are those of its billable leg.
--
-- Views over calls read every month partition (legs a day apart may be one call), so each comes
-- with a function over a date range, [since, until), that reads only the partitions of the range
-- (plus a two-day margin, as call_summaries_between): daily_traffic / daily_traffic_between, ...
-- Days are UTC days; daily_traffic_between(..., local_days => true) dates each call in its
-- account's time zone instead (accounts.timezone: the zone its billing periods run in), UTC for
-- calls of no configured account. Revenue and margin (from charges) are dated in the account's
-- time zone, as billing periods are. Files (deliveries, quarantine) are dated by the UTC day they
-- were received.

-- == E.164 country calling codes ===================================================================

-- The ITU-T E.164 country calling codes assigned today (from the phonenumbers library's metadata,
-- 215 codes, non-geographic ones such as 800 and 882 included). They are prefix-free: at most one
-- of a number's first 1, 2 or 3 digits is a code.
CREATE FUNCTION e164_country_code(e164 text) RETURNS text
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
SELECT CASE
    WHEN e164 !~ '^\+[0-9]' THEN NULL
    WHEN substr(e164, 2, 1) IN ('1', '7') THEN substr(e164, 2, 1)
    WHEN substr(e164, 2, 2) = ANY ('{20,27,30,31,32,33,34,36,39,40,41,43,44,45,46,47,48,49,51,52,53,54,55,56,57,58,60,61,62,63,64,65,66,81,82,84,86,90,91,92,93,94,95,98}'::text[])
        THEN substr(e164, 2, 2)
    WHEN substr(e164, 2, 3) = ANY ('{211,212,213,216,218,220,221,222,223,224,225,226,227,228,229,230,231,232,233,234,235,236,237,238,239,240,241,242,243,244,245,246,247,248,249,250,251,252,253,254,255,256,257,258,260,261,262,263,264,265,266,267,268,269,290,291,297,298,299,350,351,352,353,354,355,356,357,358,359,370,371,372,373,374,375,376,377,378,380,381,382,383,385,386,387,389,420,421,423,500,501,502,503,504,505,506,507,508,509,590,591,592,593,594,595,596,597,598,599,670,672,673,674,675,676,677,678,679,680,681,682,683,685,686,687,688,689,690,691,692,800,808,850,852,853,855,856,870,878,880,881,882,883,886,888,960,961,962,963,964,965,966,967,968,970,971,972,973,974,975,976,977,979,992,993,994,995,996,998}'::text[])
        THEN substr(e164, 2, 3)
END
$$;

COMMENT ON FUNCTION e164_country_code(text) IS
    'The country calling code of an E.164 number (''+442071234567'' -> ''44'', ''+12125551234'' -> ''1'': every NANP country); NULL for NULL, a value without +digits, or an unassigned code.';

-- == Calls ========================================================================================

-- One row per call whose first leg starts in [since, until): the call_summaries_between row with
-- its billable leg's account, caller and callee type (found by the primary key's carrier and
-- record_key: a record key names one record of its carrier, start_time is in the key only because
-- the table is partitioned by it; the leg starts within the call's span and the window's margin).
CREATE FUNCTION cdrflow_call_facts(since timestamptz, until timestamptz)
RETURNS TABLE (
    carrier text, call_key text, first_start timestamptz, account_id text, answered boolean,
    talk_seconds bigint, caller text, callee_country_code text, callee_number_type text
)
LANGUAGE sql STABLE AS $$
SELECT s.carrier, s.call_key, s.first_start, c.account_id, s.answer_time IS NOT NULL, s.talk_seconds,
       coalesce(c.caller_e164, s.caller_number), e164_country_code(c.callee_e164), c.callee_number_type
FROM call_summaries_between(since, until, interval '2 days') s
LEFT JOIN calls c ON c.carrier = s.carrier AND c.record_key = s.billable_record_key
                 AND c.start_time >= s.first_start AND c.start_time <= s.last_end
                 AND c.start_time >= since - interval '2 days' AND c.start_time < until + interval '2 days'
$$;

COMMENT ON FUNCTION cdrflow_call_facts(timestamptz, timestamptz) IS
    'Internal to the analysts'' views: one row per call whose first leg starts in [since, until) (call_summaries_between), with its billable leg''s account_id, caller (E.164 when known), callee country calling code and callee number type.';

CREATE FUNCTION daily_traffic_between(since date, until date, local_days boolean DEFAULT false)
RETURNS TABLE (
    carrier text, account_id text, day date, day_zone text, calls bigint, answered bigint,
    billing_seconds bigint, minutes numeric, callers bigint
)
LANGUAGE sql STABLE AS $$
WITH facts AS (
    SELECT f.carrier, f.account_id, f.first_start, f.answered, f.talk_seconds, f.caller,
           CASE WHEN local_days THEN coalesce(a.timezone, 'UTC') ELSE 'UTC' END AS zone
    FROM cdrflow_call_facts(since::timestamp AT TIME ZONE 'UTC' - interval '1 day' * local_days::int,
                            until::timestamp AT TIME ZONE 'UTC' + interval '1 day' * local_days::int) f
    LEFT JOIN accounts a ON a.account_id = f.account_id
), dated AS (
    SELECT f.*, (f.first_start AT TIME ZONE f.zone)::date AS local_day FROM facts f
)
SELECT d.carrier, d.account_id, d.local_day, d.zone, count(*), count(*) FILTER (WHERE d.answered),
       coalesce(sum(d.talk_seconds), 0)::bigint, round(coalesce(sum(d.talk_seconds), 0)::numeric / 60, 2),
       count(DISTINCT d.caller)
FROM dated d
WHERE d.local_day >= since AND d.local_day < until
GROUP BY d.carrier, d.account_id, d.local_day, d.zone
$$;

COMMENT ON FUNCTION daily_traffic_between(date, date, boolean) IS
    'daily_traffic for the calls of the days [since, until) only (reads only those months). local_days => true: days in each call''s account''s time zone (accounts.timezone; UTC for calls of no configured account), day_zone says which.';

CREATE VIEW daily_traffic AS
SELECT * FROM daily_traffic_between('-infinity', 'infinity');

COMMENT ON VIEW daily_traffic IS
    'Traffic per carrier, account and UTC day: calls, answered calls, billing seconds and minutes, distinct callers. A call is a call_summaries row (its legs count once), dated by its first leg''s start. Reads every month: for a range use daily_traffic_between(since, until[, local_days]).';
COMMENT ON COLUMN daily_traffic.carrier IS 'the carrier (carriers.code)';
COMMENT ON COLUMN daily_traffic.account_id IS 'the account of the call''s billable leg (calls.account_id); NULL for calls of no account';
COMMENT ON COLUMN daily_traffic.day IS 'the day the call''s first leg started, in day_zone';
COMMENT ON COLUMN daily_traffic.day_zone IS 'the time zone of day: UTC, or with daily_traffic_between(..., local_days => true) the account''s time zone';
COMMENT ON COLUMN daily_traffic.calls IS 'calls (attempts, answered or not)';
COMMENT ON COLUMN daily_traffic.answered IS 'calls that answered (one of their legs answered)';
COMMENT ON COLUMN daily_traffic.billing_seconds IS 'sum of the calls'' billing seconds (call_summaries.talk_seconds; 0 for unanswered calls)';
COMMENT ON COLUMN daily_traffic.minutes IS 'billing_seconds / 60, rounded to 2 decimals';
COMMENT ON COLUMN daily_traffic.callers IS 'distinct callers (the billable leg''s caller in E.164 when known, else as the CDR wrote it)';

CREATE FUNCTION daily_asr_acd_by_destination_between(since date, until date)
RETURNS TABLE (
    carrier text, day date, callee_country_code text, callee_number_type text, attempts bigint,
    answered bigint, asr numeric, answered_seconds bigint, acd_seconds numeric
)
LANGUAGE sql STABLE AS $$
SELECT f.carrier, (f.first_start AT TIME ZONE 'UTC')::date, f.callee_country_code, f.callee_number_type,
       count(*), count(*) FILTER (WHERE f.answered),
       round(count(*) FILTER (WHERE f.answered)::numeric / count(*), 4),
       coalesce(sum(f.talk_seconds) FILTER (WHERE f.answered), 0)::bigint,
       round(sum(f.talk_seconds) FILTER (WHERE f.answered)::numeric / nullif(count(*) FILTER (WHERE f.answered), 0), 2)
FROM cdrflow_call_facts(since::timestamp AT TIME ZONE 'UTC', until::timestamp AT TIME ZONE 'UTC') f
GROUP BY 1, 2, 3, 4
$$;

COMMENT ON FUNCTION daily_asr_acd_by_destination_between(date, date) IS
    'daily_asr_acd_by_destination for the calls of the UTC days [since, until) only (reads only those months).';

CREATE VIEW daily_asr_acd_by_destination AS
SELECT * FROM daily_asr_acd_by_destination_between('-infinity', 'infinity');

COMMENT ON VIEW daily_asr_acd_by_destination IS
    'Answer-seizure ratio (ASR) and average call duration (ACD) per carrier, UTC day, callee country calling code and callee number type. Reads every month: for a range use daily_asr_acd_by_destination_between(since, until).';
COMMENT ON COLUMN daily_asr_acd_by_destination.carrier IS 'the carrier (carriers.code)';
COMMENT ON COLUMN daily_asr_acd_by_destination.day IS 'the UTC day the call''s first leg started';
COMMENT ON COLUMN daily_asr_acd_by_destination.callee_country_code IS 'country calling code of the billable leg''s callee (e164_country_code(callee_e164): 44, 49, 1, ...); NULL when the callee is no E.164 number';
COMMENT ON COLUMN daily_asr_acd_by_destination.callee_number_type IS 'the billable leg''s callee_number_type: e164, national, short, extension, sip_uri, anonymous, unknown';
COMMENT ON COLUMN daily_asr_acd_by_destination.attempts IS 'calls (seizures), answered or not';
COMMENT ON COLUMN daily_asr_acd_by_destination.answered IS 'calls that answered';
COMMENT ON COLUMN daily_asr_acd_by_destination.asr IS 'answer-seizure ratio: answered / attempts, a fraction from 0 to 1 rounded to 4 decimals';
COMMENT ON COLUMN daily_asr_acd_by_destination.answered_seconds IS 'billing seconds of the answered calls (call_summaries.talk_seconds)';
COMMENT ON COLUMN daily_asr_acd_by_destination.acd_seconds IS 'average call duration: answered_seconds / answered, in seconds rounded to 2 decimals; NULL when no call answered';

CREATE FUNCTION daily_asr_acd_between(since date, until date)
RETURNS TABLE (
    carrier text, day date, attempts bigint, answered bigint, asr numeric, answered_seconds bigint,
    acd_seconds numeric
)
LANGUAGE sql STABLE AS $$
SELECT d.carrier, d.day, sum(d.attempts)::bigint, sum(d.answered)::bigint,
       round(sum(d.answered) / sum(d.attempts), 4), sum(d.answered_seconds)::bigint,
       round(sum(d.answered_seconds) / nullif(sum(d.answered), 0), 2)
FROM daily_asr_acd_by_destination_between(since, until) d
GROUP BY d.carrier, d.day
$$;

COMMENT ON FUNCTION daily_asr_acd_between(date, date) IS
    'daily_asr_acd for the calls of the UTC days [since, until) only (reads only those months).';

CREATE VIEW daily_asr_acd AS
SELECT * FROM daily_asr_acd_between('-infinity', 'infinity');

COMMENT ON VIEW daily_asr_acd IS
    'Answer-seizure ratio (ASR = answered / attempts) and average call duration (ACD = billing seconds of answered calls / answered) per carrier and UTC day. Reads every month: for a range use daily_asr_acd_between(since, until); by destination: daily_asr_acd_by_destination.';
COMMENT ON COLUMN daily_asr_acd.carrier IS 'the carrier (carriers.code)';
COMMENT ON COLUMN daily_asr_acd.day IS 'the UTC day the call''s first leg started';
COMMENT ON COLUMN daily_asr_acd.attempts IS 'calls (seizures), answered or not';
COMMENT ON COLUMN daily_asr_acd.answered IS 'calls that answered';
COMMENT ON COLUMN daily_asr_acd.asr IS 'answer-seizure ratio: answered / attempts, a fraction from 0 to 1 rounded to 4 decimals';
COMMENT ON COLUMN daily_asr_acd.answered_seconds IS 'billing seconds of the answered calls (call_summaries.talk_seconds)';
COMMENT ON COLUMN daily_asr_acd.acd_seconds IS 'average call duration: answered_seconds / answered, in seconds rounded to 2 decimals; NULL when no call answered';

-- == Quarantine ===================================================================================

-- A row fails one or more checks (rejected_rows.reasons). A parse problem's reason carries its
-- detail ('parse:start_time:unparseable ''x''...'): the check is its first two parts, as the load
-- summaries count them (cdrflow.loading.counts); an expectation's reason is its check.
CREATE VIEW quarantine_by_reason AS
WITH reasons AS (
    SELECT f.carrier, (f.uploaded_date AT TIME ZONE 'UTC')::date AS day, r.id, r.file_id, r.line_number,
           r.raw_text, u.reason,
           CASE WHEN u.reason LIKE 'parse:%' THEN split_part(u.reason, ':', 1) || ':' || split_part(u.reason, ':', 2)
                ELSE u.reason END AS failed_check
    FROM rejected_rows r
    JOIN cdr_files f ON f.id = r.file_id
    CROSS JOIN LATERAL unnest(r.reasons) AS u(reason)
), counted AS (
    SELECT carrier, day, failed_check, count(DISTINCT id) AS rows_rejected, count(DISTINCT file_id) AS files
    FROM reasons
    GROUP BY carrier, day, failed_check
), examples AS (
    SELECT DISTINCT ON (carrier, day, failed_check) carrier, day, failed_check, file_id, line_number, reason, raw_text
    FROM reasons
    ORDER BY carrier, day, failed_check, file_id, line_number
)
SELECT c.carrier, c.day, c.failed_check, c.rows_rejected, c.files, e.file_id AS example_file_id,
       e.line_number AS example_line_number, e.reason AS example_reason, e.raw_text AS example_line
FROM counted c
JOIN examples e USING (carrier, day, failed_check);

COMMENT ON VIEW quarantine_by_reason IS
    'The quarantine (rejected_rows) per carrier, UTC day the file was received and failed check: how many rows and files, and the first such row as an example. A row that failed two checks counts under each.';
COMMENT ON COLUMN quarantine_by_reason.carrier IS 'the carrier of the files (carriers.code)';
COMMENT ON COLUMN quarantine_by_reason.day IS 'the UTC day the files were received (cdr_files.uploaded_date)';
COMMENT ON COLUMN quarantine_by_reason.failed_check IS 'the check the rows failed: an expectation (expect_column_values_to_be_between(duration_seconds)) or a parse problem (parse:start_time, parse:column_count)';
COMMENT ON COLUMN quarantine_by_reason.rows_rejected IS 'quarantined rows that failed it';
COMMENT ON COLUMN quarantine_by_reason.files IS 'files those rows came from';
COMMENT ON COLUMN quarantine_by_reason.example_file_id IS 'the file of the example row (the lowest file id, then line number)';
COMMENT ON COLUMN quarantine_by_reason.example_line_number IS 'the example row''s line number in its file';
COMMENT ON COLUMN quarantine_by_reason.example_reason IS 'the example row''s reason in full (a parse problem with its detail)';
COMMENT ON COLUMN quarantine_by_reason.example_line IS 'the example row as text (rejected_rows.raw_text)';

-- == Deliveries ===================================================================================

-- An archive that was unpacked (its members are files with parent_id pointing at it) is counted
-- under archives only, so that loaded, failed, ... count the files that carry calls; an archive
-- that could not be unpacked has no members and counts as the rejected file it is.
CREATE VIEW daily_deliveries AS
SELECT f.carrier, (f.uploaded_date AT TIME ZONE 'UTC')::date AS day,
       count(*) FILTER (WHERE NOT a.unpacked) AS files,
       count(*) FILTER (WHERE NOT a.unpacked AND f.status = 'loaded') AS loaded,
       count(*) FILTER (WHERE NOT a.unpacked AND f.status = 'failed') AS failed,
       count(*) FILTER (WHERE NOT a.unpacked AND f.status = 'rejected') AS rejected,
       count(*) FILTER (WHERE NOT a.unpacked AND f.status = 'duplicate') AS duplicate,
       count(*) FILTER (WHERE NOT a.unpacked AND f.status IN ('received', 'processing')) AS pending,
       count(*) FILTER (WHERE a.unpacked) AS archives,
       coalesce(sum(f.calls_loaded) FILTER (WHERE f.status = 'loaded'), 0)::bigint AS calls_loaded,
       coalesce(sum(f.calls_rejected), 0)::bigint AS rows_rejected,
       coalesce(sum(f.calls_duplicate) FILTER (WHERE f.status = 'loaded'), 0)::bigint AS calls_duplicate,
       coalesce(sum(f.file_size) FILTER (WHERE NOT a.unpacked), 0)::bigint AS bytes
FROM cdr_files f
CROSS JOIN LATERAL (SELECT EXISTS (SELECT 1 FROM cdr_files m WHERE m.parent_id = f.id) AS unpacked) a
GROUP BY f.carrier, (f.uploaded_date AT TIME ZONE 'UTC')::date;

COMMENT ON VIEW daily_deliveries IS
    'Files received per carrier and UTC day, by status, with the calls they loaded and the rows they quarantined. files = loaded + failed + rejected + duplicate + pending. Days with no file: delivery_gaps(since, until).';
COMMENT ON COLUMN daily_deliveries.carrier IS 'the carrier (carriers.code)';
COMMENT ON COLUMN daily_deliveries.day IS 'the UTC day the files were received (cdr_files.uploaded_date)';
COMMENT ON COLUMN daily_deliveries.files IS 'files received (archive members included, unpacked archives themselves not)';
COMMENT ON COLUMN daily_deliveries.loaded IS 'of them, loaded';
COMMENT ON COLUMN daily_deliveries.failed IS 'of them, failed: more quarantined rows than the carrier''s reject_threshold, or a row failing a check of severity fail (nothing loaded; bytes, log and quarantine kept; can be re-run)';
COMMENT ON COLUMN daily_deliveries.rejected IS 'of them, rejected: not readable as their format at all, or an archive that could not be unpacked';
COMMENT ON COLUMN daily_deliveries.duplicate IS 'of them, duplicates (bytes received before: nothing loaded)';
COMMENT ON COLUMN daily_deliveries.pending IS 'of them, still received or processing';
COMMENT ON COLUMN daily_deliveries.archives IS 'unpacked archives (.zip, .gz) received that day; their members are counted in files';
COMMENT ON COLUMN daily_deliveries.calls_loaded IS 'calls the loaded files put in the warehouse (cdr_files.calls_loaded)';
COMMENT ON COLUMN daily_deliveries.rows_rejected IS 'rows the files quarantined (cdr_files.calls_rejected; rejected files keep their quarantine)';
COMMENT ON COLUMN daily_deliveries.calls_duplicate IS 'rows of the loaded files that were calls already in the warehouse (cdr_files.calls_duplicate)';
COMMENT ON COLUMN daily_deliveries.bytes IS 'size of the files in bytes';

CREATE FUNCTION delivery_gaps(since date, until date)
RETURNS TABLE (carrier text, day date, calls_on_day bigint, last_file_before timestamptz)
LANGUAGE plpgsql STABLE AS $$
BEGIN
    IF since IS NULL OR until IS NULL OR NOT isfinite(since) OR NOT isfinite(until) THEN
        RAISE EXCEPTION 'delivery_gaps(since, until): both days must be given and finite, e.g. delivery_gaps(''2026-11-01'', ''2026-12-01'')'
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    RETURN QUERY
    SELECT r.code, d.day, coalesce(cd.calls, 0)::bigint,
           (SELECT max(f.uploaded_date) FROM cdr_files f
            WHERE f.carrier = r.code AND f.duplicate_of IS NULL
              AND f.uploaded_date < d.day::timestamp AT TIME ZONE 'UTC')
    FROM carriers r
    CROSS JOIN LATERAL (SELECT g::date AS day
                        FROM generate_series(since::timestamp, until::timestamp - interval '1 day', interval '1 day') AS g) d
    LEFT JOIN call_days cd ON cd.carrier = r.code AND cd.day = d.day
    WHERE r.delivery = 'daily'
      AND NOT EXISTS (SELECT 1 FROM cdr_files f
                      WHERE f.carrier = r.code AND f.duplicate_of IS NULL
                        AND f.uploaded_date >= d.day::timestamp AT TIME ZONE 'UTC'
                        AND f.uploaded_date < (d.day + 1)::timestamp AT TIME ZONE 'UTC')
    ORDER BY r.code, d.day;
END
$$;

COMMENT ON FUNCTION delivery_gaps(date, date) IS
    'The days of [since, until) (UTC) on which a carrier with delivery daily sent no file (duplicates of earlier files do not count): carrier, day, calls_on_day (call records of that day, brought by files received on other days: call_days; 0 when none), last_file_before (its latest file before that day; NULL: none yet). The billing DAGs'' completeness check is more lenient: a day also counts as delivered by a file the next day or by calls of the day (cdrflow.billing.completeness).';

-- == Revenue, cost and margin =====================================================================

-- Every current, rated charge (charges: one per leg and side), and every call of call_margins
-- (both sides rated, same currency), dated by the call's start in its account's time zone.
CREATE VIEW daily_margins AS
WITH sides AS (
    SELECT ch.account_id, ch.carrier, ch.start_time, ch.currency,
           CASE WHEN ch.side = 'sell' THEN ch.cost END AS sell_cost,
           CASE WHEN ch.side = 'buy' THEN ch.cost END AS buy_cost,
           NULL::numeric AS margin
    FROM charges ch
    WHERE ch.current AND ch.unrated_reason IS NULL
    UNION ALL
    SELECT m.account_id, m.carrier, m.start_time, m.currency, NULL, NULL, m.margin
    FROM call_margins m
)
SELECT s.account_id, s.carrier, (s.start_time AT TIME ZONE coalesce(a.timezone, 'UTC'))::date AS day,
       coalesce(a.timezone, 'UTC') AS day_zone, s.currency,
       count(s.sell_cost) AS sold_calls, coalesce(sum(s.sell_cost), 0) AS revenue,
       count(s.buy_cost) AS bought_calls, coalesce(sum(s.buy_cost), 0) AS cost,
       count(s.margin) AS margin_calls, coalesce(sum(s.margin), 0) AS margin,
       count(*) FILTER (WHERE s.margin < 0) AS calls_below_cost
FROM sides s
LEFT JOIN accounts a ON a.account_id = s.account_id
GROUP BY s.account_id, s.carrier, (s.start_time AT TIME ZONE coalesce(a.timezone, 'UTC'))::date,
         coalesce(a.timezone, 'UTC'), s.currency;

COMMENT ON VIEW daily_margins IS
    'Revenue (what accounts pay: current sell charges), cost (what carriers charge us: current buy charges) and margin per account, carrier, day and currency, from the charges in force now (after any rerating); unrated charges are left out (charge_lines WHERE unrated_reason IS NOT NULL). margin sums call_margins: only calls rated on both sides in this currency have one, so margin = revenue - cost only when sold_calls = bought_calls = margin_calls. Per month: monthly_margins.';
COMMENT ON COLUMN daily_margins.account_id IS 'the account of the calls (charges.account_id); NULL for calls of no account';
COMMENT ON COLUMN daily_margins.carrier IS 'the carrier of the calls (carriers.code)';
COMMENT ON COLUMN daily_margins.day IS 'the day the calls started in day_zone (the account''s billing day)';
COMMENT ON COLUMN daily_margins.day_zone IS 'the account''s time zone (accounts.timezone), UTC for calls of no configured account';
COMMENT ON COLUMN daily_margins.currency IS 'ISO 4217 code of revenue, cost and margin (no currency conversion: a call sold in EUR and bought in USD adds to two rows)';
COMMENT ON COLUMN daily_margins.sold_calls IS 'calls with a current rated sell charge in this currency (unanswered ones at 0 included)';
COMMENT ON COLUMN daily_margins.revenue IS 'sum of those sell charges (charges.cost, each rounded per call)';
COMMENT ON COLUMN daily_margins.bought_calls IS 'calls with a current rated buy charge in this currency (carriers with a buy_deck)';
COMMENT ON COLUMN daily_margins.cost IS 'sum of those buy charges';
COMMENT ON COLUMN daily_margins.margin_calls IS 'calls rated on both sides in this currency (call_margins rows)';
COMMENT ON COLUMN daily_margins.margin IS 'sum of their margins (call_margins.margin: sell_cost - buy_cost)';
COMMENT ON COLUMN daily_margins.calls_below_cost IS 'of them, calls sold below cost (margin < 0)';

CREATE VIEW monthly_margins AS
SELECT account_id, carrier, date_trunc('month', day)::date AS month, day_zone, currency,
       sum(sold_calls)::bigint AS sold_calls, sum(revenue) AS revenue, sum(bought_calls)::bigint AS bought_calls,
       sum(cost) AS cost, sum(margin_calls)::bigint AS margin_calls, sum(margin) AS margin,
       sum(calls_below_cost)::bigint AS calls_below_cost
FROM daily_margins
GROUP BY account_id, carrier, date_trunc('month', day)::date, day_zone, currency;

COMMENT ON VIEW monthly_margins IS
    'daily_margins summed per month (the account''s month, as monthly billing periods run): revenue, cost and margin per account, carrier, month and currency.';
COMMENT ON COLUMN monthly_margins.account_id IS 'the account of the calls; NULL for calls of no account';
COMMENT ON COLUMN monthly_margins.carrier IS 'the carrier of the calls (carriers.code)';
COMMENT ON COLUMN monthly_margins.month IS 'first day of the month the calls started in, in day_zone';
COMMENT ON COLUMN monthly_margins.day_zone IS 'the account''s time zone, UTC for calls of no configured account';
COMMENT ON COLUMN monthly_margins.currency IS 'ISO 4217 code of revenue, cost and margin';
COMMENT ON COLUMN monthly_margins.sold_calls IS 'calls with a current rated sell charge';
COMMENT ON COLUMN monthly_margins.revenue IS 'sum of their sell charges';
COMMENT ON COLUMN monthly_margins.bought_calls IS 'calls with a current rated buy charge';
COMMENT ON COLUMN monthly_margins.cost IS 'sum of their buy charges';
COMMENT ON COLUMN monthly_margins.margin_calls IS 'calls rated on both sides (call_margins rows)';
COMMENT ON COLUMN monthly_margins.margin IS 'sum of their margins (sell - buy)';
COMMENT ON COLUMN monthly_margins.calls_below_cost IS 'of them, calls sold below cost';

-- == The data dictionary: a COMMENT on every table, view, column and function that lacked one ======
-- (docs/data-dictionary.md is generated from these; month partitions of calls inherit nothing and
-- are left out of the dictionary: their parent's comments describe them.)

COMMENT ON TABLE cdrflow_migrations IS
    'The migrations of sql/ applied to this warehouse (written by cdrflow.warehouse.migrations, `cdrflow db upgrade`): an applied migration whose file changed is refused.';
COMMENT ON COLUMN cdrflow_migrations.version IS 'the migration''s number (NNN of sql/NNN_name.sql)';
COMMENT ON COLUMN cdrflow_migrations.name IS 'the name part of its file name';
COMMENT ON COLUMN cdrflow_migrations.checksum IS 'SHA-256 hex of the file as applied';
COMMENT ON COLUMN cdrflow_migrations.applied_at IS 'when it was applied';

COMMENT ON TABLE file_types IS 'The CDR file formats cdrflow reads (cdrflow.formats), by code.';
COMMENT ON COLUMN file_types.code IS 'format code: kazoo_json, asterisk_csv, freeswitch_csv, telnyx_csv, billing_feed_csv, mapped';
COMMENT ON COLUMN file_types.description IS 'what the format is';

COMMENT ON TABLE carriers IS
    'Who sends CDR files: one row per carrier, synced from include/carriers.yaml by `cdrflow carriers sync` (or `cdrflow carrier add`).';
COMMENT ON COLUMN carriers.code IS 'carrier code (lower case letters, digits, _ . -), as files, calls and charges name it';
COMMENT ON COLUMN carriers.name IS 'display name';
COMMENT ON COLUMN carriers.file_type IS 'the format of its files (file_types.code), unless a file says otherwise';
COMMENT ON COLUMN carriers.mapping IS 'for file_type mapped: the path of its YAML mapping file';
COMMENT ON COLUMN carriers.billable IS 'whether its calls are billed (billing runs and the completeness check take billable carriers only)';
COMMENT ON COLUMN carriers.delivery IS 'daily or monthly: how often it sends files (delivery_gaps and the billing completeness check expect a file per day from daily carriers)';
COMMENT ON COLUMN carriers.reject_threshold IS 'fraction of a file''s rows (0 to 1) that may be quarantined; above it the file fails and loads nothing';
COMMENT ON COLUMN carriers.config IS 'the rest of its carrier-file entry as JSON: timezone and encoding of its files, billable_leg, dial_plan, checks (validation severities), buy_deck';
COMMENT ON COLUMN carriers.created_at IS 'when the carrier was added';
COMMENT ON COLUMN carriers.updated_at IS 'when the row last changed (trigger carriers_touch)';

COMMENT ON TABLE cdr_files IS
    'The file registry (seed 000 "CDR Files"): every file that arrived, by any source, stored whole before it was parsed, with its status, counts and processing log. One original per SHA1; a repeat is a duplicate row pointing at it.';
COMMENT ON COLUMN cdr_files.id IS 'file id (seed 000 id)';
COMMENT ON COLUMN cdr_files.file_name IS 'name as received (seed 000 fileName)';
COMMENT ON COLUMN cdr_files.stored_file_id IS 'content address of the bytes in the raw store, sha1/ab/cd/<sha1> (seed 000 storedFileID)';
COMMENT ON COLUMN cdr_files.uploaded_date IS 'when the file was received (seed 000 uploadedDate); the day of deliveries and quarantine views';
COMMENT ON COLUMN cdr_files.file_source IS 'how it came: upload, email, sftp, ftp, bucket, api (seed 000 fileSource)';
COMMENT ON COLUMN cdr_files.carrier IS 'the carrier that sent it (carriers.code)';
COMMENT ON COLUMN cdr_files.file_type IS 'its format (file_types.code), by default the carrier''s';
COMMENT ON COLUMN cdr_files.billing IS 'whether it holds billable calls (seed 000 billing)';
COMMENT ON COLUMN cdr_files.daily IS 'true for a daily file, false for a monthly one (seed 000 daily)';
COMMENT ON COLUMN cdr_files.billrun IS 'the id (as text) of the billrun that charged its calls (seed 000 billrun); NULL until billed';
COMMENT ON COLUMN cdr_files.notes IS 'free text (seed 000 notes)';
COMMENT ON COLUMN cdr_files.mail_message IS 'for a file that came by email: the message''s Message-ID (seed 000 mailMessage)';
COMMENT ON COLUMN cdr_files.mail_from IS 'for a file that came by email: the sender (seed 000 mailFrom)';
COMMENT ON COLUMN cdr_files.mail_to IS 'for a file that came by email: the recipient (seed 000 mailTo)';
COMMENT ON COLUMN cdr_files.mail_subject IS 'for a file that came by email: the subject (seed 000 mailSubject)';
COMMENT ON COLUMN cdr_files.status IS 'received, processing, loaded, failed, rejected or duplicate (seed 000 status); duplicate is final';
COMMENT ON COLUMN cdr_files.file_path IS 'URL of the stored bytes (seed 000 filePath)';
COMMENT ON COLUMN cdr_files.original_hash IS 'SHA1 hex of the bytes (seed 000 originalHash); unique among originals, never changes';
COMMENT ON COLUMN cdr_files.duplicate_of IS 'for a duplicate: the id of the original with the same SHA1; NULL for an original';
COMMENT ON COLUMN cdr_files.file_size IS 'size in bytes (seed 000 fileSize)';
COMMENT ON COLUMN cdr_files.lines IS 'records processed (seed 000 lines): calls_loaded + calls_rejected + calls_duplicate';
COMMENT ON COLUMN cdr_files.file_processed_stamp IS 'when processing finished (seed 000 fileProcessedStamp)';
COMMENT ON COLUMN cdr_files.processing_log IS 'timestamped lines of what happened to the file (seed 000 processingLog); append-only (trigger)';
COMMENT ON COLUMN cdr_files.revision_number IS '1 at registration, +1 on every change of the row (seed 000 revisionNumber; trigger)';
COMMENT ON COLUMN cdr_files.source_uri IS 'where the collector found the file (no credentials)';
COMMENT ON COLUMN cdr_files.created_at IS 'when the row was created';
COMMENT ON COLUMN cdr_files.updated_at IS 'when the row last changed (trigger)';
COMMENT ON COLUMN cdr_files.calls_loaded IS 'calls the load put in the warehouse, flagged ones included';
COMMENT ON COLUMN cdr_files.calls_rejected IS 'rows the load quarantined (rejected_rows)';
COMMENT ON COLUMN cdr_files.calls_duplicate IS 'rows that were calls already in the warehouse, or twice in the file (call_duplicates)';
COMMENT ON COLUMN cdr_files.parent_id IS 'for a member of a .zip or .gz archive: the archive''s file id';
COMMENT ON COLUMN cdr_files.calls_flagged IS 'of calls_loaded, the calls loaded with quality flags (calls.quality); NULL for files loaded before it was counted';

COMMENT ON TABLE calls IS
    'One row per call record (a leg) in a canonical shape covering seed 003''s properties, partitioned by month of start_time (partitions calls_YYYY_MM, made by cdrflow_ensure_calls_partition). Legs of one call share call_key; call_legs and call_summaries make calls of them. All timestamps UTC.';
COMMENT ON COLUMN calls.id IS 'monotonic id (calls_id_seq): the cursor of incremental readers; unique, not indexed';
COMMENT ON COLUMN calls.carrier IS 'the carrier (carriers.code); primary key with record_key and start_time';
COMMENT ON COLUMN calls.carrier_call_id IS 'the call id the record carries (Asterisk uniqueid, FreeSWITCH uuid, Kazoo call_id, ...); several records may share it';
COMMENT ON COLUMN calls.start_time IS 'when the leg started (UTC); the partition key';
COMMENT ON COLUMN calls.file_id IS 'the file that brought it (cdr_files.id; no foreign key: the loader is the only writer)';
COMMENT ON COLUMN calls.line_number IS 'its line (record) number in that file';
COMMENT ON COLUMN calls.other_leg_call_id IS 'the call id of the other leg, when the record names it (FreeSWITCH bleg_uuid, Kazoo other_leg_call_id)';
COMMENT ON COLUMN calls.direction IS 'inbound or outbound; NULL when the record does not say';
COMMENT ON COLUMN calls.answer_time IS 'when it was answered (UTC); NULL when it was not';
COMMENT ON COLUMN calls.end_time IS 'when it ended (UTC)';
COMMENT ON COLUMN calls.duration_seconds IS 'seconds from start to end';
COMMENT ON COLUMN calls.billing_seconds IS 'billable seconds, from answer to end (billsec)';
COMMENT ON COLUMN calls.ringing_seconds IS 'seconds from start to answer (or to end when unanswered)';
COMMENT ON COLUMN calls.caller_number IS 'the caller''s number as the record wrote it';
COMMENT ON COLUMN calls.caller_name IS 'the caller''s name (caller id name)';
COMMENT ON COLUMN calls.callee_number IS 'the called number as the record wrote it';
COMMENT ON COLUMN calls.callee_name IS 'the callee''s name';
COMMENT ON COLUMN calls.from_uri IS 'the SIP From URI';
COMMENT ON COLUMN calls.to_uri IS 'the SIP To URI';
COMMENT ON COLUMN calls.hangup_cause IS 'hangup cause as the switch named it (NORMAL_CLEARING, ...)';
COMMENT ON COLUMN calls.hangup_code IS 'SIP response code of the hangup';
COMMENT ON COLUMN calls.disposition IS 'the switch''s disposition (ANSWERED, NO ANSWER, BUSY, FAILED, ...)';
COMMENT ON COLUMN calls.account_id IS 'the account the call belongs to (accounts.account_id): who pays it, whose APIs see it';
COMMENT ON COLUMN calls.user_id IS 'the user (Kazoo owner_id or username)';
COMMENT ON COLUMN calls.realm IS 'the SIP realm (Kazoo)';
COMMENT ON COLUMN calls.authorizing_id IS 'the id of the device or resource that authorised the call (Kazoo)';
COMMENT ON COLUMN calls.connection IS 'the connection (trunk) the call used, where the record names one (Telnyx connection)';
COMMENT ON COLUMN calls.tags IS 'tags of the call (seed 003 tags)';
COMMENT ON COLUMN calls.call_type IS 'seed 004 call type as the record gives it (billing feed files)';
COMMENT ON COLUMN calls.call_sub_type IS 'seed 004 call sub type as the record gives it';
COMMENT ON COLUMN calls.record_type IS 'complete (answered and billed), incomplete or error';
COMMENT ON COLUMN calls.extras IS 'every source field without a column, as a JSON object (json: extras ->> ''channel''; cast to jsonb for its operators)';
COMMENT ON COLUMN calls.rate IS 'unused (NULL): rating writes charges (sql/014), kept for compatibility';
COMMENT ON COLUMN calls.cost IS 'unused (NULL): a call''s cost is in charges (current, side sell or buy)';
COMMENT ON COLUMN calls.rated_billrun IS 'unused (NULL): the billrun that charged a call is charges.billrun_id';
COMMENT ON COLUMN calls.rated_at IS 'unused (NULL): when a call was charged is charges.created_at';
COMMENT ON COLUMN calls.loaded_at IS 'when the row was loaded';
COMMENT ON COLUMN calls.record_key IS 'what makes the record unique in its carrier (the format''s own key: Asterisk uniqueid#sequence, ...); primary key with carrier and start_time';
COMMENT ON COLUMN calls.call_key IS 'the call the leg belongs to (legs of one call share it); NULL on rows loaded before it existed: the leg is its own call (carrier_call_id)';
COMMENT ON COLUMN calls.quality IS 'JSON array of the checks of severity flag the leg failed; NULL when it passed every check';
COMMENT ON COLUMN calls.caller_e164 IS 'the caller in E.164 (+ and digits) by the carrier''s dial plan; NULL when it is no telephone number';
COMMENT ON COLUMN calls.callee_e164 IS 'the callee in E.164 by the carrier''s dial plan (what rating matches); NULL when it is no telephone number';
COMMENT ON COLUMN calls.caller_number_type IS 'e164, national, short, extension, sip_uri, anonymous or unknown';
COMMENT ON COLUMN calls.callee_number_type IS 'e164, national, short, extension, sip_uri, anonymous or unknown';

COMMENT ON TABLE rejected_rows IS
    'The quarantine: every row that failed parsing or a check of severity reject, with its file, line number, raw text and reasons; never dropped. A re-run of the file replaces its rows.';
COMMENT ON COLUMN rejected_rows.id IS 'row id';
COMMENT ON COLUMN rejected_rows.file_id IS 'the file (cdr_files.id)';
COMMENT ON COLUMN rejected_rows.line_number IS 'its line (record) number in the file';
COMMENT ON COLUMN rejected_rows.raw_text IS 'the line as text (invalid bytes replaced)';
COMMENT ON COLUMN rejected_rows.raw_bytes IS 'the exact bytes, when they are not valid in the file''s encoding; else NULL';
COMMENT ON COLUMN rejected_rows.reasons IS 'the failed checks (expectation names) and parse problems (parse:<field>:<detail>)';
COMMENT ON COLUMN rejected_rows.created_at IS 'when it was quarantined';

COMMENT ON TABLE call_days IS
    'Calls per carrier and UTC day, kept by the loader in the same transaction as the calls: daily volumes without scanning calls.';
COMMENT ON COLUMN call_days.carrier IS 'the carrier (carriers.code)';
COMMENT ON COLUMN call_days.day IS 'UTC day of the calls'' start_time';
COMMENT ON COLUMN call_days.calls IS 'call records (legs) of the carrier that started that day';

COMMENT ON TABLE file_claims IS
    'Which processing run has taken which received file (FOR UPDATE SKIP LOCKED); a claim older than its lease may be taken again.';
COMMENT ON COLUMN file_claims.file_id IS 'the file (cdr_files.id)';
COMMENT ON COLUMN file_claims.run_id IS 'the run that claimed it (an Airflow run id, or the command''s)';
COMMENT ON COLUMN file_claims.claimed_at IS 'when it was claimed';

COMMENT ON TABLE call_duplicates IS
    'A row a file carried that was a call already in the warehouse (refused by the primary key), so that re-running the first file hands the call over instead of deleting it. Replaced when the file is re-run.';
COMMENT ON COLUMN call_duplicates.file_id IS 'the file whose row was refused (cdr_files.id)';
COMMENT ON COLUMN call_duplicates.line_number IS 'its line in that file';
COMMENT ON COLUMN call_duplicates.carrier IS 'the call it repeated: carrier';
COMMENT ON COLUMN call_duplicates.carrier_call_id IS 'the call it repeated: carrier_call_id';
COMMENT ON COLUMN call_duplicates.start_time IS 'the call it repeated: start_time';
COMMENT ON COLUMN call_duplicates.record_key IS 'the call it repeated: record_key (with carrier and start_time, the primary key of calls)';

COMMENT ON COLUMN api_credentials.id IS 'credential id (what `cdrflow accounts revoke` takes)';
COMMENT ON COLUMN api_credentials.label IS 'a note on what the credential is for';
COMMENT ON COLUMN api_credentials.created_at IS 'when it was created';

-- report_requests (sql/018) was written beside this migration: fill only the comments it lacks,
-- so that a comment it gains there is not overwritten here.
DO $$
DECLARE
    c record;
BEGIN
    FOR c IN
        SELECT v.col, v.note
        FROM (VALUES
            ('id', 'the request id (seed 001 id), a UUID'),
            ('start_time', 'start of the period the report covers (calls starting at or after it)'),
            ('end_time', 'end of the period (exclusive)'),
            ('connections', 'connection filter (calls.connection); empty: every connection'),
            ('report_name', 'the name the client gave the report'),
            ('source', 'seed 001 source filter: calls, call-control, fax-api or webrtc; NULL: every source'),
            ('failure_reason', 'why the build failed (status 3); else NULL'),
            ('bytes', 'size of the stored report in bytes'),
            ('row_count', 'rows in the report'),
            ('completed_at', 'when the build completed'),
            ('expires_at', 'when the report''s artefact expires (completion + 30 days)'),
            ('claimed_by', 'the builder holding the claim (host and process)'),
            ('created_by', 'api_credentials.id of the caller that created it (no foreign key: a revoked credential''s requests stay)'),
            ('created_at', 'when it was requested'),
            ('updated_at', 'when the row last changed')
        ) AS v(col, note)
        JOIN pg_attribute a ON a.attrelid = to_regclass('report_requests') AND a.attname = v.col AND NOT a.attisdropped
        WHERE col_description(a.attrelid, a.attnum) IS NULL
    LOOP
        EXECUTE format('COMMENT ON COLUMN report_requests.%I IS %L', c.col, c.note);
    END LOOP;
END
$$;

COMMENT ON VIEW call_legs IS
    'Every leg of calls (the whole table) with its call key and whether it answered, is its call''s answered leg and is billable, by the carrier''s billable_leg rule. For a range: cdrflow_call_legs(since, until).';
COMMENT ON COLUMN call_legs.id IS 'calls.id of the leg';
COMMENT ON COLUMN call_legs.carrier IS 'the carrier (carriers.code)';
COMMENT ON COLUMN call_legs.call_key IS 'the call the leg belongs to: calls.call_key, else its carrier_call_id';
COMMENT ON COLUMN call_legs.record_key IS 'the leg''s record key (calls primary key)';
COMMENT ON COLUMN call_legs.carrier_call_id IS 'the call id the record carries';
COMMENT ON COLUMN call_legs.other_leg_call_id IS 'the other leg''s call id, when the record names it';
COMMENT ON COLUMN call_legs.direction IS 'inbound or outbound';
COMMENT ON COLUMN call_legs.start_time IS 'when the leg started (UTC)';
COMMENT ON COLUMN call_legs.answer_time IS 'when it was answered (UTC); NULL when not';
COMMENT ON COLUMN call_legs.end_time IS 'when it ended (UTC)';
COMMENT ON COLUMN call_legs.duration_seconds IS 'seconds from start to end';
COMMENT ON COLUMN call_legs.billing_seconds IS 'billable seconds (billsec)';
COMMENT ON COLUMN call_legs.caller_number IS 'the caller as the record wrote it';
COMMENT ON COLUMN call_legs.callee_number IS 'the callee as the record wrote it';
COMMENT ON COLUMN call_legs.disposition IS 'the switch''s disposition';
COMMENT ON COLUMN call_legs.hangup_code IS 'SIP response code of the hangup';
COMMENT ON COLUMN call_legs.file_id IS 'the file that brought it (cdr_files.id)';
COMMENT ON COLUMN call_legs.line_number IS 'its line in that file';
COMMENT ON COLUMN call_legs.answered IS 'the leg answered: an answer time and billing seconds (merged: the first piece with an answer time, else the first 2xx piece)';
COMMENT ON COLUMN call_legs.answered_leg IS 'it is its call''s answered leg (the answered leg with the most billing seconds)';
COMMENT ON COLUMN call_legs.billable IS 'the billable_rule picks it to bill (every leg for every_leg)';
COMMENT ON COLUMN call_legs.billable_rule IS 'answered_longest, originating, every_leg or merged: the carrier''s billable_leg, else its format''s default';

COMMENT ON VIEW call_summaries IS
    'One row per carrier and call (the whole table: legs a day or a file apart are one call). For the calls of a range: call_summaries_between(since, until[, margin]).';
COMMENT ON COLUMN call_summaries.carrier IS 'the carrier (carriers.code)';
COMMENT ON COLUMN call_summaries.call_key IS 'the call (call_legs.call_key)';
COMMENT ON COLUMN call_summaries.first_start IS 'start of its first leg (UTC)';
COMMENT ON COLUMN call_summaries.answer_time IS 'when its answered leg was answered; NULL: the call did not answer';
COMMENT ON COLUMN call_summaries.last_end IS 'end of its last leg (UTC)';
COMMENT ON COLUMN call_summaries.legs IS 'how many legs it has';
COMMENT ON COLUMN call_summaries.record_keys IS 'its legs'' record keys, by start';
COMMENT ON COLUMN call_summaries.answered_record_key IS 'record key of its answered leg; NULL when none answered';
COMMENT ON COLUMN call_summaries.talk_seconds IS 'its billing seconds by its rule: the billable leg''s, the sum of the legs'' (every_leg, merged), or answer to last end (merged without billing seconds)';
COMMENT ON COLUMN call_summaries.billable_record_key IS 'record key of its billable leg (for every_leg: the longest answered one)';
COMMENT ON COLUMN call_summaries.billable_legs IS 'how many of its legs bill (1, or every leg for every_leg)';
COMMENT ON COLUMN call_summaries.caller_number IS 'the billable leg''s caller';
COMMENT ON COLUMN call_summaries.callee_number IS 'the billable leg''s callee';
COMMENT ON COLUMN call_summaries.billable_rule IS 'answered_longest, originating, every_leg or merged';

COMMENT ON COLUMN charge_lines.charge_id IS 'charges.id';
COMMENT ON COLUMN charge_lines.billrun_id IS 'the billrun that wrote the charge (billruns.id)';
COMMENT ON COLUMN charge_lines.kind IS 'the billrun''s kind: daily or monthly';
COMMENT ON COLUMN charge_lines.period_start IS 'first day of the billrun''s period';
COMMENT ON COLUMN charge_lines.billrun_version IS 'the billrun''s version (2, 3, ...: an adjustment for late calls)';
COMMENT ON COLUMN charge_lines.current IS 'the charge in force (false: replaced by a rerating)';
COMMENT ON COLUMN charge_lines.side IS 'sell (the account pays) or buy (the carrier charges us)';
COMMENT ON COLUMN charge_lines.account_id IS 'the call''s account';
COMMENT ON COLUMN charge_lines.billing_group IS 'the account''s billing group (now)';
COMMENT ON COLUMN charge_lines.carrier IS 'the leg''s carrier';
COMMENT ON COLUMN charge_lines.record_key IS 'the leg''s record key';
COMMENT ON COLUMN charge_lines.start_time IS 'the leg''s start (UTC)';
COMMENT ON COLUMN charge_lines.caller_number IS 'the leg''s caller as the CDR wrote it';
COMMENT ON COLUMN charge_lines.callee_number IS 'the leg''s callee as the CDR wrote it';
COMMENT ON COLUMN charge_lines.caller_e164 IS 'the caller in E.164';
COMMENT ON COLUMN charge_lines.callee_e164 IS 'the callee in E.164 (what was rated)';
COMMENT ON COLUMN charge_lines.duration_seconds IS 'the leg''s duration';
COMMENT ON COLUMN charge_lines.billing_seconds IS 'billing seconds as the CDR says';
COMMENT ON COLUMN charge_lines.billed_seconds IS 'seconds billed after the minimum and the increments';
COMMENT ON COLUMN charge_lines.deck IS 'the rate deck used';
COMMENT ON COLUMN charge_lines.deck_version_id IS 'the deck version in force at the start (rate_deck_versions.id)';
COMMENT ON COLUMN charge_lines.prefix IS 'the matched prefix';
COMMENT ON COLUMN charge_lines.destination IS 'the matched rate''s destination name';
COMMENT ON COLUMN charge_lines.call_type IS 'seed 004 call type of the matched rate';
COMMENT ON COLUMN charge_lines.call_sub_type IS 'seed 004 call sub type of the matched rate';
COMMENT ON COLUMN charge_lines.cost IS 'the call''s cost, rounded per call; NULL when unrated';
COMMENT ON COLUMN charge_lines.currency IS 'ISO 4217 code of cost';
COMMENT ON COLUMN charge_lines.unrated_reason IS 'why the leg could not be rated; NULL when rated';
COMMENT ON COLUMN charge_lines.replaces IS 'the charge this one replaced (a rerating); NULL for a first charge';
COMMENT ON COLUMN charge_lines.created_at IS 'when the charge was written';

COMMENT ON COLUMN invoices.billrun_id IS 'the billrun (billruns.id)';
COMMENT ON COLUMN invoices.kind IS 'daily or monthly';
COMMENT ON COLUMN invoices.period_start IS 'first day of the period (in the account''s time zone)';
COMMENT ON COLUMN invoices.period_end IS 'day after the period (exclusive)';
COMMENT ON COLUMN invoices.scope IS 'the account the billrun charged, or ''all''';
COMMENT ON COLUMN invoices.billrun_version IS 'the billrun''s version (2, 3, ...: an adjustment)';
COMMENT ON COLUMN invoices.rerating IS 'the billrun is a rerating (its invoice holds the re-rated calls at their new price)';
COMMENT ON COLUMN invoices.account_id IS 'the account invoiced ('''' for calls without an account)';
COMMENT ON COLUMN invoices.billing_group IS 'the account''s billing group';
COMMENT ON COLUMN invoices.currency IS 'ISO 4217 code of amount';
COMMENT ON COLUMN invoices.calls IS 'charged legs (unanswered ones included)';
COMMENT ON COLUMN invoices.billed_seconds IS 'sum of their billed seconds';
COMMENT ON COLUMN invoices.amount IS 'the invoice total: sum of its invoice lines';

COMMENT ON COLUMN call_margins.carrier IS 'the leg''s carrier';
COMMENT ON COLUMN call_margins.record_key IS 'the leg''s record key';
COMMENT ON COLUMN call_margins.start_time IS 'the leg''s start (UTC)';
COMMENT ON COLUMN call_margins.account_id IS 'the call''s account';
COMMENT ON COLUMN call_margins.billrun_id IS 'the billrun of the sell charge';
COMMENT ON COLUMN call_margins.destination IS 'the sell rate''s destination name';
COMMENT ON COLUMN call_margins.call_type IS 'the sell rate''s call type';
COMMENT ON COLUMN call_margins.sell_prefix IS 'the prefix the sell deck matched';
COMMENT ON COLUMN call_margins.buy_prefix IS 'the prefix the buy deck matched';
COMMENT ON COLUMN call_margins.sell_billed_seconds IS 'seconds billed to the account';
COMMENT ON COLUMN call_margins.buy_billed_seconds IS 'seconds the carrier bills us';
COMMENT ON COLUMN call_margins.sell_cost IS 'what the account pays for the call';
COMMENT ON COLUMN call_margins.buy_cost IS 'what the carrier charges us for it';
COMMENT ON COLUMN call_margins.margin IS 'sell_cost - buy_cost (negative: sold below cost)';
COMMENT ON COLUMN call_margins.currency IS 'ISO 4217 code of both costs';

COMMENT ON COLUMN destination_margins.billrun_id IS 'the billrun of the sell charges';
COMMENT ON COLUMN destination_margins.destination IS 'the sell rate''s destination name';
COMMENT ON COLUMN destination_margins.call_type IS 'the sell rate''s call type';
COMMENT ON COLUMN destination_margins.currency IS 'ISO 4217 code of the totals';
COMMENT ON COLUMN destination_margins.calls IS 'calls rated on both sides';
COMMENT ON COLUMN destination_margins.billed_seconds IS 'seconds billed to accounts';
COMMENT ON COLUMN destination_margins.sell_total IS 'what accounts pay';
COMMENT ON COLUMN destination_margins.buy_total IS 'what carriers charge us';
COMMENT ON COLUMN destination_margins.margin IS 'sell_total - buy_total';
COMMENT ON COLUMN destination_margins.calls_below_cost IS 'calls with a negative margin';

COMMENT ON COLUMN below_cost_destinations.billrun_id IS 'the billrun of the sell charges';
COMMENT ON COLUMN below_cost_destinations.destination IS 'the sell rate''s destination name';
COMMENT ON COLUMN below_cost_destinations.call_type IS 'the sell rate''s call type';
COMMENT ON COLUMN below_cost_destinations.currency IS 'ISO 4217 code of the totals';
COMMENT ON COLUMN below_cost_destinations.calls IS 'calls rated on both sides';
COMMENT ON COLUMN below_cost_destinations.billed_seconds IS 'seconds billed to accounts';
COMMENT ON COLUMN below_cost_destinations.sell_total IS 'what accounts pay';
COMMENT ON COLUMN below_cost_destinations.buy_total IS 'what carriers charge us';
COMMENT ON COLUMN below_cost_destinations.margin IS 'sell_total - buy_total (negative here)';
COMMENT ON COLUMN below_cost_destinations.calls_below_cost IS 'calls with a negative margin';

COMMENT ON FUNCTION cdr_files_before_update() IS
    'Trigger: bumps revision_number and updated_at on every change of a cdr_files row, and refuses a rewrite of processing_log or a change of original_hash.';
COMMENT ON FUNCTION carriers_touch() IS 'Trigger: sets carriers.updated_at on every change.';
COMMENT ON FUNCTION cdrflow_ensure_calls_partition(timestamptz) IS
    'Creates the month partition of calls that holds ts (calls_YYYY_MM) unless it exists, and returns its name; safe when loaders call it at once.';
COMMENT ON FUNCTION cdrflow_call_legs(timestamptz, timestamptz) IS
    'The legs that start in [since, until) with the flags of call_legs (legs of one call must all be in the window for the flags to be the call''s), and bill_rank (1: the billable leg).';
COMMENT ON FUNCTION cdrflow_call_summaries(timestamptz, timestamptz) IS
    'One row per carrier and call among the legs of cdrflow_call_legs(since, until): the columns of call_summaries.';
COMMENT ON FUNCTION call_summaries_between(timestamptz, timestamptz, interval) IS
    'The calls whose first leg starts in [since, until), reading only the legs within margin (default 2 days) of the window: the efficient form of a day''s call_summaries.';
