-- Issue 11: rate decks (price lists), versioned and dated; the rates of each version.
--
-- A deck is what cdrflow sells to an account (kind 'sell') or buys from a carrier ('buy'). Each
-- import makes a new version (1, 2, ... per deck) in force from its effective_from date; the
-- version in force at a moment is the one with the latest effective_from on or before that
-- moment's date (ties: the highest version). Versions are never edited: a change is a new one.
-- Money is numeric (exact), never float. Deck settings other than name, currency and kind
-- (rounding method and decimals, time zone, and what the rater adds later) live in `settings`.

CREATE TABLE rate_decks (
    name        text PRIMARY KEY CHECK (name <> ''),
    currency    text NOT NULL CHECK (currency ~ '^[A-Z]{3}$'),
    kind        text NOT NULL CHECK (kind IN ('sell', 'buy')),
    settings    jsonb NOT NULL DEFAULT '{}'::jsonb,
    created_at  timestamptz NOT NULL DEFAULT now()
);

COMMENT ON TABLE rate_decks IS
    'Rate decks (price lists): what cdrflow sells to an account (sell) or buys from a carrier (buy). Prices are in rate_deck_versions and rates.';
COMMENT ON COLUMN rate_decks.name IS 'deck name, as given to `cdrflow rates import --deck` (a CGRateS RatingPlan id for CGRateS decks)';
COMMENT ON COLUMN rate_decks.currency IS 'ISO 4217 code of every price in the deck (USD, EUR, ...)';
COMMENT ON COLUMN rate_decks.kind IS 'sell (what accounts pay) or buy (what a carrier charges us)';
COMMENT ON COLUMN rate_decks.settings IS
    'the other deck settings as JSON: rounding_method (up, down, half_up, half_even), rounding_decimals, timezone, and any setting the rater adds';
COMMENT ON COLUMN rate_decks.created_at IS 'when the deck was first imported';

CREATE TABLE rate_deck_versions (
    id              bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    deck            text NOT NULL REFERENCES rate_decks (name) ON UPDATE CASCADE,
    version         integer NOT NULL CHECK (version > 0),
    effective_from  date NOT NULL,
    imported_at     timestamptz NOT NULL DEFAULT now(),
    source          text NOT NULL,
    rates           integer NOT NULL DEFAULT 0,
    UNIQUE (deck, version)
);

CREATE INDEX rate_deck_versions_in_force ON rate_deck_versions (deck, effective_from DESC, version DESC);

COMMENT ON TABLE rate_deck_versions IS
    'One row per import of a deck: a complete set of rates in force from effective_from until a later version takes over.';
COMMENT ON COLUMN rate_deck_versions.id IS 'version id (what rates.version_id and charges refer to)';
COMMENT ON COLUMN rate_deck_versions.deck IS 'the deck (rate_decks.name)';
COMMENT ON COLUMN rate_deck_versions.version IS '1, 2, ... per deck, in import order';
COMMENT ON COLUMN rate_deck_versions.effective_from IS
    'first day the version is in force (from 00:00 of that date); the version in force at a moment is the one with the latest effective_from on or before its date, ties to the highest version';
COMMENT ON COLUMN rate_deck_versions.imported_at IS 'when it was imported';
COMMENT ON COLUMN rate_deck_versions.source IS 'what it was imported from: the file or folder name and its format (e.g. "rates.csv (cdrtool)")';
COMMENT ON COLUMN rate_deck_versions.rates IS 'how many rates (prefixes) the version holds';

CREATE TABLE rates (
    version_id         bigint NOT NULL REFERENCES rate_deck_versions (id) ON DELETE CASCADE,
    prefix             text NOT NULL CHECK (prefix ~ '^[0-9]*$'),
    destination        text NOT NULL DEFAULT '',
    call_type          text,
    call_sub_type      text,
    connect_fee        numeric NOT NULL DEFAULT 0 CHECK (connect_fee >= 0),
    minimum_seconds    integer NOT NULL DEFAULT 0 CHECK (minimum_seconds >= 0),
    minimum_charge     numeric NOT NULL DEFAULT 0 CHECK (minimum_charge >= 0),
    rounding_method    text CHECK (rounding_method IN ('up', 'down', 'half_up', 'half_even')),
    rounding_decimals  integer CHECK (rounding_decimals BETWEEN 0 AND 12),
    max_cost           numeric CHECK (max_cost >= 0),
    max_cost_strategy  text,
    slots              jsonb NOT NULL CHECK (jsonb_typeof(slots) = 'array' AND jsonb_array_length(slots) > 0),
    PRIMARY KEY (version_id, prefix)
);

COMMENT ON TABLE rates IS
    'The rates of each deck version, one per prefix: a call is priced by the rate whose prefix is the longest one its number starts with.';
COMMENT ON COLUMN rates.version_id IS 'the deck version (rate_deck_versions.id)';
COMMENT ON COLUMN rates.prefix IS 'digits the called number starts with (E.164 without +, e.g. 44 or 447); the empty prefix matches every number (CGRateS *any)';
COMMENT ON COLUMN rates.destination IS 'a name for people: "United Kingdom - Mobile"';
COMMENT ON COLUMN rates.call_type IS 'seed 004 call type: I international, M/MG/M3 mobile, S national, L local, 8 toll free, 9 premium (0900); NULL when the deck does not say';
COMMENT ON COLUMN rates.call_sub_type IS 'seed 004 call sub type, free text; NULL when the deck does not say';
COMMENT ON COLUMN rates.connect_fee IS 'charged once per billed call, in the deck currency';
COMMENT ON COLUMN rates.minimum_seconds IS 'a billed call is billed at least this many seconds (0: no minimum)';
COMMENT ON COLUMN rates.minimum_charge IS 'a billed call costs at least this much, connect fee excluded (0: no minimum)';
COMMENT ON COLUMN rates.rounding_method IS 'rounding of the call cost for this rate (up, down, half_up, half_even); NULL: the deck''s (settings ->> ''rounding_method'')';
COMMENT ON COLUMN rates.rounding_decimals IS 'decimals of the call cost for this rate; NULL: the deck''s';
COMMENT ON COLUMN rates.max_cost IS 'CGRateS MaxCost: the most a call may cost (with max_cost_strategy); NULL: no cap';
COMMENT ON COLUMN rates.max_cost_strategy IS 'CGRateS MaxCostStrategy: *free (cost capped at max_cost) or *disconnect';
COMMENT ON COLUMN rates.slots IS
    'the price as a JSON list of slots, by start: {"start": call second the slot applies from, "price": per unit as a decimal string, "unit": seconds the price is for (60: per minute), "increment": billing step in seconds}. 60/60 at 0.10 a minute: [{"start":0,"price":"0.10","unit":60,"increment":60}]; first price: slots->0->>''price''';
