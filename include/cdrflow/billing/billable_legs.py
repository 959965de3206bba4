"""The billable legs a billrun charges: the period's legs with no current charge, in one query.

The billable flag is ``cdrflow_call_legs``' (``sql/010_calls_by_call.sql``: the carrier's
``billable_leg`` rule), computed here in a cheaper form with the same result (a test compares
them): a leg bills when its carrier's rule is ``every_leg``, or it is the only leg of its call in
the window (its ``bill_rank`` is 1), or it ranks first among its call's legs. Only the legs of
calls with several legs are ranked: window functions over those few rows instead of a sort of the
whole window (the sort of 200,000 legs was most of the query). The call key is never NULL
(``carrier_call_id`` is NOT NULL), so joining on it groups legs as ``PARTITION BY`` does. The
columns the rater needs (``callee_e164``, ``account_id``) and the caller the billing feed shows
come with the legs, with no join back to ``calls``; legs come in start order (the order of the run's charges and feed records).

The sort also makes the server read every leg, and look up its charges, before it returns the
first: the billrun's writer then fills ``charges`` only after. Tried without it (the first leg
came 1.7 s sooner of a day of 1,000,000 calls): the lookups then ran while the writer filled
``charges``, and on a warehouse whose statistics say ``charges`` is empty (its first billrun) the
planner scans ``charges`` once per leg, over every charge written so far: that billrun had not
finished after 20 minutes.

The accounts are joined once, to the calls themselves (``base``), where the planner knows it
joins a day of calls and hashes the accounts: joined later, to the CTE's rows, it expected a few
rows and probed ``accounts`` twice per leg through its index (0.3 s of 1.0 s at 200,000 legs).
``scope`` holds every account, ``chosen`` when the run charges it (its cycle, the run's account),
with the period's bounds in its zone.

Parameters: ``ps``/``pe`` the period's dates, ``kind``, ``account`` (None: every account of the
cycle), ``everyone`` (take calls of no configured account, in UTC), ``since``/``until`` the
window read (the period in every zone, plus a margin so a call's legs are read together),
``utc_since``/``utc_until`` the period in UTC.
"""

LEGS = """
WITH scope AS (
    SELECT a.account_id, a.sell_deck,
           a.cycle = :kind AND (CAST(:account AS text) IS NULL OR a.account_id = :account) AS chosen,
           (CAST(:ps AS date)::timestamp AT TIME ZONE a.timezone) AS since,
           (CAST(:pe AS date)::timestamp AT TIME ZONE a.timezone) AS until
    FROM accounts a
), base AS (
    SELECT c.id, c.carrier, coalesce(c.call_key, c.carrier_call_id) AS call_key, c.record_key, c.carrier_call_id,
           c.direction, c.start_time, c.answer_time, c.billing_seconds, c.hangup_code, c.file_id,
           coalesce(c.callee_e164, c.callee_number) AS number, coalesce(c.caller_e164, c.caller_number) AS caller,
           c.account_id,
           s.account_id IS NOT NULL AS known, CASE WHEN s.chosen THEN s.sell_deck END AS sell_deck,
           s.chosen, s.since, s.until,
           coalesce(r.billable, true) AS carrier_billable, r.config ->> 'buy_deck' AS buy_deck,
           coalesce(r.config ->> 'billable_leg',
                    CASE r.file_type WHEN 'asterisk_csv' THEN 'answered_longest'
                                     WHEN 'freeswitch_csv' THEN 'originating'
                                     WHEN 'kazoo_json' THEN 'originating'
                                     ELSE 'every_leg' END) AS rule
    FROM calls c LEFT JOIN carriers r ON r.code = c.carrier LEFT JOIN scope s ON s.account_id = c.account_id
    WHERE c.start_time >= :since AND c.start_time < :until
), several AS (
    SELECT carrier, call_key FROM base WHERE rule <> 'every_leg' GROUP BY carrier, call_key HAVING count(*) > 1
), flagged AS (
    SELECT k.id, k.carrier, k.call_key, k.carrier_call_id, k.direction, k.start_time,
           k.billing_seconds, k.record_key, k.rule,
           coalesce(CASE WHEN k.rule = 'merged'
                THEN k.answer_time IS NOT NULL
                     OR (k.hangup_code BETWEEN 200 AND 299
                         AND k.start_time = min(k.start_time) FILTER (WHERE k.hangup_code BETWEEN 200 AND 299)
                                            OVER (PARTITION BY k.carrier, k.call_key))
                ELSE k.answer_time IS NOT NULL AND coalesce(k.billing_seconds, 1) > 0
           END, false) AS answered
    FROM base k JOIN several s ON s.carrier = k.carrier AND s.call_key = k.call_key
), ranked AS (
    SELECT f.id,
           row_number() OVER (PARTITION BY f.carrier, f.call_key ORDER BY
               CASE f.rule WHEN 'originating' THEN f.carrier_call_id = f.call_key ELSE f.answered END DESC,
               CASE WHEN f.rule IN ('answered_longest', 'every_leg') THEN coalesce(f.billing_seconds, -1) ELSE 0 END DESC,
               f.start_time,
               coalesce(f.rule = 'originating' AND f.direction = 'inbound', false) DESC,
               f.record_key) AS bill_rank
    FROM flagged f
), picked AS (
    SELECT k.*
    FROM base k
    JOIN cdr_files f ON f.id = k.file_id
    LEFT JOIN several m ON m.carrier = k.carrier AND m.call_key = k.call_key
    WHERE k.carrier_billable AND f.billing
      AND (k.rule = 'every_leg' OR m.carrier IS NULL
           OR k.id IN (SELECT ranked.id FROM ranked WHERE ranked.bill_rank = 1))
      AND ((k.chosen AND k.start_time >= k.since AND k.start_time < k.until)
           OR (CAST(:everyone AS boolean) AND NOT k.known
               AND k.start_time >= :utc_since AND k.start_time < :utc_until))
)
SELECT * FROM (
    SELECT p.id, p.carrier, p.record_key, p.start_time, p.billing_seconds, p.file_id, p.account_id,
           p.number, p.caller, p.sell_deck, p.buy_deck,
           sold.id IS NULL AS need_sell,
           p.buy_deck IS NOT NULL AND bought.id IS NULL AS need_buy
    FROM picked p
    LEFT JOIN charges sold ON sold.current AND sold.side = 'sell' AND sold.carrier = p.carrier
                          AND sold.record_key = p.record_key AND sold.start_time = p.start_time
    LEFT JOIN charges bought ON bought.current AND bought.side = 'buy' AND bought.carrier = p.carrier
                            AND bought.record_key = p.record_key AND bought.start_time = p.start_time
) todo
WHERE need_sell OR need_buy
ORDER BY start_time, id
"""
