-- What each loaded call costs PostgreSQL, cut where it serves no one (issue 10; figures from
-- bench/row_cost.py, which takes the floor of a load apart).
--
-- extras becomes json: PostgreSQL stores json as the text it was given (after checking its
-- syntax) instead of parsing it into jsonb's binary form, which cost about a fifth of the whole
-- COPY of a call. Analysts read it as before (extras ->> 'channel', json_each(extras)); for
-- jsonb's operators (?, @>) or a GIN index, cast: extras::jsonb. The column is rewritten once,
-- here (a one-off cost proportional to the calls already loaded; nothing is recreated).
ALTER TABLE calls ALTER COLUMN extras DROP DEFAULT;
ALTER TABLE calls ALTER COLUMN extras TYPE json USING extras::json;
ALTER TABLE calls ALTER COLUMN extras SET DEFAULT '{}'::json;
