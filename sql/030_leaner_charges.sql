-- What each charge costs PostgreSQL while a billrun writes it (issue 11; bench/rating.py).
--
-- charges.breakdown becomes json, as calls.extras did in 012: PostgreSQL stores json as the
-- text it was given (after checking its syntax) instead of parsing it into jsonb's binary form.
-- The breakdown is most of a charge's bytes (about 585 of them), and COPYing 200,000 charges
-- took 1.60-1.67 s with it as jsonb against 1.14 s with it as text, in a billrun whose writer
-- and rater share two cores. Everyone reads it as text or JSON: the CDR API parses it, analysts
-- use ->, ->> and json_each as before; for jsonb's operators (?, @>) or a GIN index, cast:
-- breakdown::jsonb. Its text is now the rater's own (compact; jsonb printed it with spaces).
-- The column is rewritten once, here (a one-off cost proportional to the charges already
-- written; nothing is recreated, no view depends on it).
ALTER TABLE charges ALTER COLUMN breakdown TYPE json USING breakdown::json;

COMMENT ON COLUMN charges.breakdown IS 'how cost was computed: deck version date, rate, connect fee, each rate slot''s seconds and amount, minimums applied (money as decimal strings); json: cast to jsonb for its operators';
