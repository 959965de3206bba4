-- Issue 11, step 2: accounts (who pays what), billing runs, charges (append-only), invoice lines.
--
-- A billrun rates the billable legs of a period (call_legs' `billable`) that have no current
-- charge yet, and writes one charge per leg and side: `sell` (what the account pays, on its sell
-- deck) and, when the carrier has a buy_deck, `buy` (what the carrier charges us). Charges are
-- never updated except `current`, which a rerating turns off when it appends the charge that
-- replaces it; the partial unique index keeps one current charge per leg and side, so two
-- billruns can never both charge a call. Money is numeric (exact), never float.

CREATE TABLE accounts (
    account_id     text PRIMARY KEY CHECK (account_id <> ''),
    name           text NOT NULL,
    sell_deck      text NOT NULL,
    cycle          text NOT NULL CHECK (cycle IN ('daily', 'monthly')),
    timezone       text NOT NULL,
    currency       text NOT NULL CHECK (currency ~ '^[A-Z]{3}$'),
    billing_group  text,
    updated_at     timestamptz NOT NULL DEFAULT now()
);

COMMENT ON TABLE accounts IS
    'Who pays what: one row per account (the account_id of calls), synced from include/accounts.yaml by `cdrflow accounts sync`.';
COMMENT ON COLUMN accounts.account_id IS 'the account_id of its calls (calls.account_id)';
COMMENT ON COLUMN accounts.name IS 'display name';
COMMENT ON COLUMN accounts.sell_deck IS 'the rate deck it pays (rate_decks.name, kind sell); no foreign key: a deck may be imported after the account is configured';
COMMENT ON COLUMN accounts.cycle IS 'daily or monthly: which billing run (billruns.kind) charges its calls';
COMMENT ON COLUMN accounts.timezone IS 'IANA zone: its days and months run from midnight to midnight there';
COMMENT ON COLUMN accounts.currency IS 'ISO 4217 code it is invoiced in (its sell deck''s currency)';
COMMENT ON COLUMN accounts.billing_group IS 'label grouping accounts on invoices and in the billing feed (seed 004 billing group)';
COMMENT ON COLUMN accounts.updated_at IS 'when the sync last changed the row';

CREATE TABLE billruns (
    id            bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    kind          text NOT NULL CHECK (kind IN ('daily', 'monthly')),
    period_start  date NOT NULL,
    period_end    date NOT NULL CHECK (period_end > period_start),
    scope         text NOT NULL,
    version       integer NOT NULL CHECK (version > 0),
    status        text NOT NULL DEFAULT 'running' CHECK (status IN ('running', 'closed', 'failed')),
    started_at    timestamptz NOT NULL DEFAULT now(),
    finished_at   timestamptz,
    calls         integer NOT NULL DEFAULT 0,
    rated         integer NOT NULL DEFAULT 0,
    unrated       jsonb NOT NULL DEFAULT '{}'::jsonb,
    totals        jsonb NOT NULL DEFAULT '{}'::jsonb,
    buy_rated     integer NOT NULL DEFAULT 0,
    buy_unrated   jsonb NOT NULL DEFAULT '{}'::jsonb,
    buy_totals    jsonb NOT NULL DEFAULT '{}'::jsonb,
    error         text,
    UNIQUE (kind, period_start, scope, version)
);

COMMENT ON TABLE billruns IS
    'One row per billing run: the period it closed, what it charged (counts, unrated calls by reason, totals per currency). Its charges are in charges, its invoice in invoice_lines.';
COMMENT ON COLUMN billruns.id IS 'billrun id (charges.billrun_id, invoice_lines.billrun_id, cdr_files.billrun as text)';
COMMENT ON COLUMN billruns.kind IS 'daily or monthly: it charges the accounts whose cycle is this';
COMMENT ON COLUMN billruns.period_start IS 'first day of the period, a date in each account''s own time zone (the period starts at its midnight there)';
COMMENT ON COLUMN billruns.period_end IS 'day after the period (exclusive): [period_start, period_end) in each account''s time zone';
COMMENT ON COLUMN billruns.scope IS 'the account it charged, or ''all'' (every account of the cycle, and calls of no configured account)';
COMMENT ON COLUMN billruns.version IS '1 for the first run of (kind, period, scope); a later run that found new calls (late files) is version 2, 3, ...: an adjustment that charges only those';
COMMENT ON COLUMN billruns.status IS 'running, closed (committed with its charges) or failed (nothing charged; see error)';
COMMENT ON COLUMN billruns.started_at IS 'when it started';
COMMENT ON COLUMN billruns.finished_at IS 'when it closed or failed';
COMMENT ON COLUMN billruns.calls IS 'billable legs it charged (any side)';
COMMENT ON COLUMN billruns.rated IS 'sell charges it rated (unanswered calls at 0 included)';
COMMENT ON COLUMN billruns.unrated IS 'sell charges it could not rate: reason -> count (no deck for the account, no prefix match, deck not in force, number not ratable, billing seconds missing)';
COMMENT ON COLUMN billruns.totals IS 'sell totals: currency -> amount as a decimal string (the sum of its invoice lines, which are sums of rounded call costs)';
COMMENT ON COLUMN billruns.buy_rated IS 'buy charges it rated (carriers with a buy_deck)';
COMMENT ON COLUMN billruns.buy_unrated IS 'buy charges it could not rate: reason -> count';
COMMENT ON COLUMN billruns.buy_totals IS 'buy totals: currency -> amount as a decimal string (what carriers charge us)';
COMMENT ON COLUMN billruns.error IS 'why it failed (status failed), else NULL';

CREATE TABLE charges (
    id               bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    billrun_id       bigint NOT NULL REFERENCES billruns (id),
    call_id          bigint NOT NULL,
    carrier          text NOT NULL,
    record_key       text NOT NULL,
    start_time       timestamptz NOT NULL,
    account_id       text,
    side             text NOT NULL CHECK (side IN ('sell', 'buy')),
    deck             text,
    deck_version_id  bigint REFERENCES rate_deck_versions (id),
    prefix           text,
    destination      text,
    call_type        text,
    call_sub_type    text,
    billing_seconds  integer,
    billed_seconds   integer,
    cost             numeric,
    currency         text,
    breakdown        jsonb,
    unrated_reason   text,
    created_at       timestamptz NOT NULL DEFAULT now(),
    current          boolean NOT NULL DEFAULT true,
    CHECK ((unrated_reason IS NULL) = (cost IS NOT NULL))
);

-- One current charge per leg and side: the second billrun's insert is skipped (ON CONFLICT DO NOTHING).
CREATE UNIQUE INDEX charges_current_key ON charges (carrier, record_key, start_time, side) WHERE current;
CREATE INDEX charges_billrun_idx ON charges (billrun_id, side);

COMMENT ON TABLE charges IS
    'What each billable call leg costs, per side (sell: the account pays; buy: the carrier charges us). Append-only: money is never updated; a rerating appends a new charge and turns the old one''s current off. One current charge per leg and side.';
COMMENT ON COLUMN charges.id IS 'increases in insert order';
COMMENT ON COLUMN charges.billrun_id IS 'the billrun that wrote it (billruns.id)';
COMMENT ON COLUMN charges.call_id IS 'calls.id of the leg';
COMMENT ON COLUMN charges.carrier IS 'the leg''s carrier (calls primary key, with record_key and start_time)';
COMMENT ON COLUMN charges.record_key IS 'the leg''s record key (calls primary key)';
COMMENT ON COLUMN charges.start_time IS 'the leg''s start (calls primary key; the deck version in force at this moment rated it)';
COMMENT ON COLUMN charges.account_id IS 'the call''s account_id (who pays; NULL when the call has none)';
COMMENT ON COLUMN charges.side IS 'sell (the account''s sell deck) or buy (the carrier''s buy deck)';
COMMENT ON COLUMN charges.deck IS 'the rate deck used (NULL: no deck for the account)';
COMMENT ON COLUMN charges.deck_version_id IS 'the deck version in force at the call''s start (rate_deck_versions.id; NULL when none)';
COMMENT ON COLUMN charges.prefix IS 'the matched prefix (longest prefix of the callee number)';
COMMENT ON COLUMN charges.destination IS 'the matched rate''s destination name';
COMMENT ON COLUMN charges.call_type IS 'seed 004 call type of the matched rate (I, M, MG, M3, S, L, 8, 9)';
COMMENT ON COLUMN charges.call_sub_type IS 'seed 004 call sub type of the matched rate';
COMMENT ON COLUMN charges.billing_seconds IS 'billing seconds of the leg as the CDR says (billsec)';
COMMENT ON COLUMN charges.billed_seconds IS 'seconds billed after the minimum and the increments';
COMMENT ON COLUMN charges.cost IS 'the call''s cost, rounded per call with the deck''s method and decimals; 0 for unanswered calls; NULL when unrated';
COMMENT ON COLUMN charges.currency IS 'ISO 4217 code of cost (the deck''s currency)';
COMMENT ON COLUMN charges.breakdown IS 'how cost was computed: deck version date, rate, connect fee, each rate slot''s seconds and amount, minimums applied (money as decimal strings)';
COMMENT ON COLUMN charges.unrated_reason IS 'why the leg could not be rated (no deck for the account, no prefix match, deck not in force, number not ratable, billing seconds missing); NULL when rated';
COMMENT ON COLUMN charges.created_at IS 'when it was written';
COMMENT ON COLUMN charges.current IS 'true for the charge in force for its leg and side; false once a rerating replaced it';

CREATE TABLE invoice_lines (
    billrun_id      bigint NOT NULL REFERENCES billruns (id),
    account_id      text NOT NULL,
    currency        text NOT NULL,
    destination     text NOT NULL,
    call_type       text NOT NULL,
    calls           integer NOT NULL,
    billed_seconds  bigint NOT NULL,
    amount          numeric NOT NULL,
    PRIMARY KEY (billrun_id, account_id, currency, destination, call_type)
);

COMMENT ON TABLE invoice_lines IS
    'A billrun''s invoice: one line per account, currency, destination and call type, summing its rated sell charges.';
COMMENT ON COLUMN invoice_lines.billrun_id IS 'the billrun (billruns.id)';
COMMENT ON COLUMN invoice_lines.account_id IS 'the account invoiced ('''' for calls without an account_id)';
COMMENT ON COLUMN invoice_lines.currency IS 'ISO 4217 code of amount';
COMMENT ON COLUMN invoice_lines.destination IS 'destination name of the matched rates ('''' when none: unanswered calls to no matched prefix)';
COMMENT ON COLUMN invoice_lines.call_type IS 'seed 004 call type of the matched rates ('''' when the deck gives none)';
COMMENT ON COLUMN invoice_lines.calls IS 'how many charged legs (unanswered ones included)';
COMMENT ON COLUMN invoice_lines.billed_seconds IS 'sum of their billed seconds';
COMMENT ON COLUMN invoice_lines.amount IS 'sum of their costs, each already rounded per call: the line equals the sum of its calls';
