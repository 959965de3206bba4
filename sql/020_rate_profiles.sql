-- Issue 11: time-of-day and weekday profiles of rate decks.
--
-- A deck version may define periods (peak: Monday to Friday 08:00-19:00, weekend: Saturday and
-- Sunday), in the deck's time zone (rate_decks.settings ->> 'timezone'). A prefix may then have one
-- rate per period besides its rate for any other time (period ''): a call is priced second by
-- second by the rate of the period each second starts in, so a call that crosses a boundary is
-- split at it. Versions without periods, and prefixes with only a '' rate, rate as before.

ALTER TABLE rates ADD COLUMN period text NOT NULL DEFAULT '';
ALTER TABLE rates DROP CONSTRAINT rates_pkey;
ALTER TABLE rates ADD PRIMARY KEY (version_id, prefix, period);

COMMENT ON COLUMN rates.period IS
    'the period of the version (rate_periods.period) this rate prices; '''' (most rates): any time no rate of the prefix''s own period applies';

CREATE TABLE rate_periods (
    version_id  bigint NOT NULL REFERENCES rate_deck_versions (id) ON DELETE CASCADE,
    period      text NOT NULL CHECK (period ~ '^[A-Za-z0-9_.+-]+$'),
    weekdays    smallint[] NOT NULL
                CHECK (cardinality(weekdays) > 0 AND weekdays <@ ARRAY[1, 2, 3, 4, 5, 6, 7]::smallint[]),
    start_time  time NOT NULL,
    end_time    time NOT NULL CHECK (end_time > start_time),
    PRIMARY KEY (version_id, period, weekdays, start_time)
);

COMMENT ON TABLE rate_periods IS
    'The time-of-day and weekday periods of a deck version (peak, offpeak, weekend), one row per window: on these weekdays from start_time to end_time, local time in the deck''s time zone. Periods of one version never overlap; a moment in none of them is priced by the '''' rates.';
COMMENT ON COLUMN rate_periods.version_id IS 'the deck version (rate_deck_versions.id)';
COMMENT ON COLUMN rate_periods.period IS 'the period''s name, as rates.period names it';
COMMENT ON COLUMN rate_periods.weekdays IS 'ISO weekdays the window is on: 1 Monday ... 7 Sunday';
COMMENT ON COLUMN rate_periods.start_time IS 'local time the window starts (inclusive), in the deck''s time zone';
COMMENT ON COLUMN rate_periods.end_time IS 'local time the window ends (exclusive; 24:00:00 is midnight at the end of the day)';
