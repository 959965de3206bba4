-- Issue 10: calls made of legs, for analysts.
--
-- calls keeps one row per record (a leg); call_key (009) names the call a leg belongs to, set by
-- the parser and, for legs that name each other (FreeSWITCH bleg_uuid, Kazoo other_leg_call_id),
-- by the loader (cdrflow.loading.legs). Rows loaded before 009 have NULL call_key: such a leg is
-- its own call, coalesce(call_key, carrier_call_id) everywhere below. Nothing is backfilled.
--
-- The billable leg follows a rule per carrier: carriers.config ->> 'billable_leg' (carriers.yaml
-- key billable_leg), else the format's default (the same as cdrflow.config.vocabulary's
-- DEFAULT_BILLABLE_LEG):
--   answered_longest  the answered leg with the most billing seconds (ties: earliest start, then
--                     record_key); talk time is its billing seconds.    default: asterisk_csv
--   originating       the leg whose carrier_call_id is the call key (the A-leg; without one, the
--                     earliest, inbound first); talk time is its billing seconds.
--                                                          default: freeswitch_csv, kazoo_json
--   every_leg         each leg bills on its own; talk time is the sum of the legs' billing seconds.
--                                          default: telnyx_csv, billing_feed_csv, mapped
--   merged            the legs are pieces of one record: the answered piece is the earliest one
--                     with an answer time, or else the earliest with a 2xx SIP code (an OpenSIPS
--                     INVITE is written on its 200 OK); talk time is the sum of the pieces' billing
--                     seconds (CGRateS partials) or, when no piece has any, the seconds from the
--                     answer to the last piece's end (OpenSIPS: the INVITE's 200 to the BYE).

-- The loader's lookups of the legs that name a leg (cdrflow.loading.legs). Partial: rows without
-- an other leg (Asterisk, Telnyx, the billing feed) are not in it and cost a load nothing.
CREATE INDEX calls_other_leg_idx ON calls (carrier, other_leg_call_id) WHERE other_leg_call_id IS NOT NULL;

-- Every leg that starts in [since, until) with its call key, whether it answered, whether it is
-- its call's answered leg, and whether it is billable. Legs of one call must all be in the
-- window for the flags to be the call's: call_legs (below) takes the whole table.
CREATE FUNCTION cdrflow_call_legs(since timestamptz, until timestamptz)
RETURNS TABLE (
    id bigint, carrier text, call_key text, record_key text, carrier_call_id text,
    other_leg_call_id text, direction text, start_time timestamptz, answer_time timestamptz,
    end_time timestamptz, duration_seconds integer, billing_seconds integer,
    caller_number text, callee_number text, disposition text, hangup_code integer,
    file_id bigint, line_number integer,
    answered boolean, answered_leg boolean, billable boolean, billable_rule text, bill_rank bigint
)
LANGUAGE sql STABLE AS $$
WITH base AS (
    SELECT c.id, c.carrier, coalesce(c.call_key, c.carrier_call_id) AS call_key, c.record_key,
           c.carrier_call_id, c.other_leg_call_id, c.direction, c.start_time, c.answer_time,
           c.end_time, c.duration_seconds, c.billing_seconds, c.caller_number, c.callee_number,
           c.disposition, c.hangup_code, c.file_id, c.line_number,
           coalesce(r.config ->> 'billable_leg',
                    CASE r.file_type WHEN 'asterisk_csv' THEN 'answered_longest'
                                     WHEN 'freeswitch_csv' THEN 'originating'
                                     WHEN 'kazoo_json' THEN 'originating'
                                     ELSE 'every_leg' END) AS rule
    FROM calls c LEFT JOIN carriers r ON r.code = c.carrier
    WHERE c.start_time >= since AND c.start_time < until
), flagged AS (
    SELECT b.*,
           coalesce(CASE WHEN b.rule = 'merged'
                THEN b.answer_time IS NOT NULL
                     OR (b.hangup_code BETWEEN 200 AND 299
                         AND b.start_time = min(b.start_time) FILTER (WHERE b.hangup_code BETWEEN 200 AND 299)
                                            OVER (PARTITION BY b.carrier, b.call_key))
                ELSE b.answer_time IS NOT NULL AND coalesce(b.billing_seconds, 1) > 0
           END, false) AS answered
    FROM base b
), ranked AS (
    SELECT f.*,
           row_number() OVER (PARTITION BY f.carrier, f.call_key ORDER BY
               f.answered DESC,
               CASE WHEN f.rule = 'merged' THEN 0 ELSE coalesce(f.billing_seconds, -1) END DESC,
               f.start_time, f.record_key) AS answer_rank,
           row_number() OVER (PARTITION BY f.carrier, f.call_key ORDER BY
               CASE f.rule WHEN 'originating' THEN f.carrier_call_id = f.call_key ELSE f.answered END DESC,
               CASE WHEN f.rule IN ('answered_longest', 'every_leg') THEN coalesce(f.billing_seconds, -1) ELSE 0 END DESC,
               f.start_time,
               coalesce(f.rule = 'originating' AND f.direction = 'inbound', false) DESC,
               f.record_key) AS bill_rank
    FROM flagged f
)
SELECT id, carrier, call_key, record_key, carrier_call_id, other_leg_call_id, direction, start_time,
       answer_time, end_time, duration_seconds, billing_seconds, caller_number, callee_number,
       disposition, hangup_code, file_id, line_number,
       answered, answered AND answer_rank = 1 AS answered_leg,
       rule = 'every_leg' OR bill_rank = 1 AS billable, rule AS billable_rule, bill_rank
FROM ranked
$$;

-- One row per carrier and call among the legs of cdrflow_call_legs(since, until).
CREATE FUNCTION cdrflow_call_summaries(since timestamptz, until timestamptz)
RETURNS TABLE (
    carrier text, call_key text, first_start timestamptz, answer_time timestamptz,
    last_end timestamptz, legs bigint, record_keys text[], answered_record_key text,
    talk_seconds bigint, billable_record_key text, billable_legs bigint,
    caller_number text, callee_number text, billable_rule text
)
LANGUAGE sql STABLE AS $$
WITH calls_of AS (
    SELECT l.carrier, l.call_key, min(l.billable_rule) AS rule,
           min(l.start_time) AS first_start,
           max(CASE WHEN l.billable_rule = 'merged' THEN coalesce(l.answer_time, l.start_time) ELSE l.answer_time END)
               FILTER (WHERE l.answered_leg) AS answer_time,
           max(coalesce(l.end_time, l.start_time)) AS last_end,
           count(*) AS legs,
           array_agg(l.record_key ORDER BY l.start_time, l.record_key) AS record_keys,
           max(l.record_key) FILTER (WHERE l.answered_leg) AS answered_record_key,
           sum(l.billing_seconds) AS billing_sum,
           max(l.billing_seconds) FILTER (WHERE l.bill_rank = 1) AS billable_seconds,
           max(l.record_key) FILTER (WHERE l.bill_rank = 1) AS billable_record_key,
           count(*) FILTER (WHERE l.billable) AS billable_legs,
           max(l.caller_number) FILTER (WHERE l.bill_rank = 1) AS caller_number,
           max(l.callee_number) FILTER (WHERE l.bill_rank = 1) AS callee_number
    FROM cdrflow_call_legs(since, until) l
    GROUP BY l.carrier, l.call_key
)
SELECT carrier, call_key, first_start, answer_time, last_end, legs, record_keys, answered_record_key,
       CASE rule
           WHEN 'every_leg' THEN coalesce(billing_sum, 0)
           WHEN 'merged' THEN coalesce(billing_sum,
                                       greatest(0, floor(extract(epoch FROM last_end - answer_time)))::bigint, 0)
           ELSE coalesce(billable_seconds, 0)
       END AS talk_seconds,
       billable_record_key, billable_legs, caller_number, callee_number, rule AS billable_rule
FROM calls_of
$$;

-- Every leg with its call key and its billable flag (the whole table: the flags are the call's).
CREATE VIEW call_legs AS
SELECT id, carrier, call_key, record_key, carrier_call_id, other_leg_call_id, direction, start_time,
       answer_time, end_time, duration_seconds, billing_seconds, caller_number, callee_number,
       disposition, hangup_code, file_id, line_number, answered, answered_leg, billable, billable_rule
FROM cdrflow_call_legs('-infinity', 'infinity');

-- One row per carrier and call (the whole table: legs a day or a file apart are one call).
CREATE VIEW call_summaries AS
SELECT * FROM cdrflow_call_summaries('-infinity', 'infinity');

-- The calls whose first leg starts in [since, until), reading only legs within margin of the
-- window (partition pruning keeps it to those months): the efficient form of a day's calls.
CREATE FUNCTION call_summaries_between(since timestamptz, until timestamptz, margin interval DEFAULT '2 days')
RETURNS SETOF call_summaries
LANGUAGE sql STABLE AS $$
SELECT * FROM cdrflow_call_summaries(since - margin, until + margin) s
WHERE s.first_start >= since AND s.first_start < until
$$;
