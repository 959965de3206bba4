-- Issue 11, step 3: the billing feed (seed 004), rerating's link between charges, and the views
-- analysts query: charges with their calls, invoices, margin per call and per destination, and
-- the destinations a billrun sold below cost.
--
-- The billing feed's ids increase in COMMIT order: a client that collected up to id N never later
-- finds a new record below N. A sequence alone does not give that (a transaction that took ids
-- earlier may commit later, after a client already read higher ids). So a feed id is taken only
-- in the last step of a billrun's (or rerating's) transaction, right before its COMMIT, while it
-- holds the transaction-level advisory lock `cdrflow.billing_feed` (pg_advisory_xact_lock): that
-- lock is released only after the transaction's commit is visible to every new snapshot, so the
-- next holder takes its ids (from the sequence, all higher) strictly after every earlier holder's
-- records are visible. The ids of two transactions are thus ordered as their commits are; a
-- rolled-back transaction leaves a gap, never a record below one already collected.
-- Code: include/cdrflow/billing/feed.py.

-- The link from a rerating's charge to the one it replaced (NULL for a billrun's first charge).
ALTER TABLE charges ADD COLUMN replaces bigint REFERENCES charges (id);
COMMENT ON COLUMN charges.replaces IS
    'the charge this one replaced (a rerating: that charge''s current is now false); NULL for a first charge';

-- What a rerating was asked for; NULL for an ordinary billrun.
ALTER TABLE billruns ADD COLUMN rerate jsonb;
COMMENT ON COLUMN billruns.rerate IS
    'NULL for an ordinary billrun; for a rerating (`cdrflow bill rerate`) what it re-rated: {"account": ..., "carrier": ..., "deck_version": ...} (each null when not given), and "replaced": how many charges it replaced';

CREATE TABLE billing_call_types (
    type         text NOT NULL,
    sub_type     text NOT NULL,
    description  text NOT NULL,
    PRIMARY KEY (type, sub_type)
);
COMMENT ON TABLE billing_call_types IS
    'Seed 004''s call type table, verbatim (21 rows): the key is the (type, sub_type) pair, codes are text (0, 8, 9 are not numbers).';
COMMENT ON COLUMN billing_call_types.type IS 'seed 004 Type (I, M, S, L, 8, 9, IB, ...)';
COMMENT ON COLUMN billing_call_types.sub_type IS 'seed 004 Sub Type (M has M, MG and M3; L has L and LO)';
COMMENT ON COLUMN billing_call_types.description IS 'seed 004 Description';

INSERT INTO billing_call_types (type, sub_type, description) VALUES
    ('IB', 'IB', 'Inbound Calls'), ('2T', '2T', 'On-net calls'), ('L', 'LO', 'Local Overage'),
    ('IM', 'INM', 'TollFree Inbound Mobile'), ('0', '0', 'Pin Blocked Calls'), ('A3', 'A3', 'AU 6113 Inbound Nat'),
    ('A8', 'A8', 'Inbound AU 6118'), ('U0', 'U0', 'Inbound UK 4480'), ('U1', 'U1', 'Inbound US 18xx'),
    ('3M', '3M', 'AU 6113 Inbound Mob'), ('9', '9', '0900 Calls'), ('I', 'I', 'International Calls'),
    ('IS', 'IN8', 'TollFree Inbound'), ('M', 'M', 'Calls to Mobile'), ('L', 'L', 'Local Calls'),
    ('S', 'S', 'National Calls'), ('8', '8', 'Toll free calls'), ('O', 'O', 'Operator Calls'),
    ('M', 'MG', 'Calls to Mobile GSM'), ('M', 'M3', 'Calls to Mobile 3G'), ('IF', 'IF', 'Inbound Forwarded');

CREATE SEQUENCE billing_feed_id_seq;
COMMENT ON SEQUENCE billing_feed_id_seq IS
    'ids of billing_feed; nextval only under the advisory lock cdrflow.billing_feed, right before COMMIT (see billing_feed.id)';

CREATE TABLE billing_feed (
    id              bigint PRIMARY KEY,
    record          text NOT NULL CHECK (record IN ('charge', 'reversal')),
    correction_of   bigint REFERENCES billing_feed (id),
    charge_id       bigint NOT NULL REFERENCES charges (id),
    billrun_id      bigint NOT NULL REFERENCES billruns (id),
    account_id      text,
    billing_group   text,
    billing_period  text NOT NULL,
    start_time      timestamptz NOT NULL,
    local_time      timestamp NOT NULL,
    seconds         integer,
    billed_seconds  integer,
    "from"          text,
    "to"            text,
    type            text,
    sub_type        text,
    description     text,
    destination     text,
    cost            numeric NOT NULL,
    currency        text NOT NULL,
    created_at      timestamptz NOT NULL DEFAULT now(),
    UNIQUE (charge_id, record)
);
CREATE INDEX billing_feed_account_idx ON billing_feed (account_id, id);

COMMENT ON TABLE billing_feed IS
    'Seed 004''s billing feed: one record per charged call (the rated sell charges, unanswered calls at 0 included), read by `cdrflow feed --from-id N` (fromid inclusive, ids ascending). Append-only: a record is never rewritten. A rerating appends, for every call it re-rated: a reversal of the record collected before (cost negated, correction_of = its id; when the call had one) and the new charge (correction_of = the same id), so the sum of a client''s collected costs is always the current total.';
COMMENT ON COLUMN billing_feed.id IS
    'the feed cursor (fromid): increases in COMMIT order (taken under the advisory lock cdrflow.billing_feed right before the writing transaction commits), so no record ever appears below an id a client has already collected; gaps are possible';
COMMENT ON COLUMN billing_feed.record IS 'charge (a call''s cost) or reversal (cancels the record correction_of, whose cost it negates)';
COMMENT ON COLUMN billing_feed.correction_of IS 'for a rerating''s records: the id of the earlier charge record of the same call that they correct; NULL for a first charge';
COMMENT ON COLUMN billing_feed.charge_id IS 'the charge (charges.id) the record shows; for a reversal, the replaced charge';
COMMENT ON COLUMN billing_feed.billrun_id IS 'the billrun (or rerating) that wrote the record';
COMMENT ON COLUMN billing_feed.account_id IS 'the account charged (the feed''s login is an account number)';
COMMENT ON COLUMN billing_feed.billing_group IS 'seed 004 "Billing group": the account''s billing_group when the record was written';
COMMENT ON COLUMN billing_feed.billing_period IS 'seed 004 "Billing Period": the billrun''s period, 2026-11-01 (daily) or 2026-11 (monthly)';
COMMENT ON COLUMN billing_feed.start_time IS 'the call''s start (an instant)';
COMMENT ON COLUMN billing_feed.local_time IS 'seed 004 "Date": the call''s start in the account''s time zone (UTC for calls of no account)';
COMMENT ON COLUMN billing_feed.seconds IS 'seed 004 "seconds": the call''s billing seconds (billsec) as the CDR says';
COMMENT ON COLUMN billing_feed.billed_seconds IS 'seconds billed after the minimum and the increments';
COMMENT ON COLUMN billing_feed."from" IS 'seed 004 "from": the caller (E.164 when known, else as the CDR wrote it)';
COMMENT ON COLUMN billing_feed."to" IS 'seed 004 "to": the callee as rated (E.164 when known, else as the CDR wrote it)';
COMMENT ON COLUMN billing_feed.type IS 'seed 004 Type (billing_call_types) of the matched rate: MG and M3 rates are type M';
COMMENT ON COLUMN billing_feed.sub_type IS 'seed 004 Sub Type: the rate''s call_sub_type when (type, it) is a pair of the seed''s table, else MG/M3 for those rates, else the type';
COMMENT ON COLUMN billing_feed.description IS 'seed 004 Description of (type, sub_type); NULL when the rate has no call type';
COMMENT ON COLUMN billing_feed.destination IS 'the matched rate''s destination name';
COMMENT ON COLUMN billing_feed.cost IS 'the call''s cost, rounded per call (a reversal: minus the corrected record''s cost)';
COMMENT ON COLUMN billing_feed.currency IS 'ISO 4217 code of cost';
COMMENT ON COLUMN billing_feed.created_at IS 'when the record was written';

-- == Views for analysts ===========================================================================

CREATE VIEW charge_lines AS
SELECT ch.id AS charge_id, ch.billrun_id, b.kind, b.period_start, b.version AS billrun_version,
       ch.current, ch.side, ch.account_id, a.billing_group, ch.carrier, ch.record_key, ch.start_time,
       c.caller_number, c.callee_number, c.caller_e164, c.callee_e164, c.duration_seconds,
       ch.billing_seconds, ch.billed_seconds, ch.deck, ch.deck_version_id, ch.prefix, ch.destination,
       ch.call_type, ch.call_sub_type, ch.cost, ch.currency, ch.unrated_reason, ch.replaces, ch.created_at
FROM charges ch
JOIN billruns b ON b.id = ch.billrun_id
LEFT JOIN accounts a ON a.account_id = ch.account_id
LEFT JOIN calls c ON c.carrier = ch.carrier AND c.record_key = ch.record_key AND c.start_time = ch.start_time;

COMMENT ON VIEW charge_lines IS
    'Every charge with its call (numbers, duration) and its billrun: filter `WHERE current` for what is charged now (older rows are charges a rerating replaced), `side = ''sell''` for what accounts pay, `unrated_reason IS NOT NULL` for calls that could not be rated.';

CREATE VIEW invoices AS
SELECT l.billrun_id, b.kind, b.period_start, b.period_end, b.scope, b.version AS billrun_version,
       b.rerate IS NOT NULL AS rerating, l.account_id, a.billing_group, l.currency,
       sum(l.calls)::bigint AS calls, sum(l.billed_seconds)::bigint AS billed_seconds, sum(l.amount) AS amount
FROM invoice_lines l
JOIN billruns b ON b.id = l.billrun_id
LEFT JOIN accounts a ON a.account_id = l.account_id
WHERE b.status = 'closed'
GROUP BY l.billrun_id, b.kind, b.period_start, b.period_end, b.scope, b.version, b.rerate, l.account_id,
         a.billing_group, l.currency;

COMMENT ON VIEW invoices IS
    'One invoice per closed billrun and account (and currency): the sum of its invoice lines. A rerating is a billrun of its own (rerating = true) whose invoice holds the re-rated calls at their new price; the billrun it corrected keeps its invoice. What an account owes for a period now is in charge_lines (WHERE current AND side = ''sell'').';

CREATE VIEW call_margins AS
SELECT s.carrier, s.record_key, s.start_time, s.account_id, s.billrun_id, s.destination, s.call_type,
       s.prefix AS sell_prefix, b.prefix AS buy_prefix, s.billed_seconds AS sell_billed_seconds,
       b.billed_seconds AS buy_billed_seconds, s.cost AS sell_cost, b.cost AS buy_cost,
       s.cost - b.cost AS margin, s.currency
FROM charges s
JOIN charges b ON b.carrier = s.carrier AND b.record_key = s.record_key AND b.start_time = s.start_time
              AND b.side = 'buy' AND b.current AND b.unrated_reason IS NULL AND b.currency = s.currency
WHERE s.side = 'sell' AND s.current AND s.unrated_reason IS NULL;

COMMENT ON VIEW call_margins IS
    'Margin per call: what the account pays (sell_cost) minus what the carrier charges us (buy_cost), for the calls whose current sell and buy charges are both rated in the same currency (no currency conversion). billrun_id is the sell charge''s; a negative margin is a call sold below cost.';

CREATE VIEW destination_margins AS
SELECT billrun_id, destination, call_type, currency, count(*) AS calls,
       sum(sell_billed_seconds)::bigint AS billed_seconds, sum(sell_cost) AS sell_total,
       sum(buy_cost) AS buy_total, sum(margin) AS margin, count(*) FILTER (WHERE margin < 0) AS calls_below_cost
FROM call_margins
GROUP BY billrun_id, destination, call_type, currency;

COMMENT ON VIEW destination_margins IS
    'Margin per billrun and destination (the sell rate''s destination name): calls, sell and buy totals, margin = sell_total - buy_total, and how many of its calls were sold below cost. Sum over billruns for a month or a year.';

CREATE VIEW below_cost_destinations AS
SELECT * FROM destination_margins WHERE margin < 0;

COMMENT ON VIEW below_cost_destinations IS
    'The destinations a billrun sold below cost (margin < 0: carriers charged us more than accounts paid), what `cdrflow bill run` and `cdrflow bill rerate` list after a vendor raises a deck.';
