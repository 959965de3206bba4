-- Issue 11 (speed): the two references a table makes to its own rows, checked by the writers
-- instead of a foreign key on every row, as sql/028 and 029 did for the others.
--
-- charges.replaces and billing_feed.correction_of are set by reratings only; a billrun writes
-- them NULL on every charge and feed record. A foreign key still queues a check for each row
-- inserted, NULL or not (PostgreSQL 15 decides at the check that a NULL needs none): measured
-- 0.75 s per 1,000,000 feed records (EXPLAIN ANALYZE's "Trigger for constraint"); the charges'
-- key queued one per charge the same way. A billrun's rows need none. What the keys did is kept:
--   * writing a reference: a rerating selects the charge it replaces (and marks it no longer
--     current, which locks it) and the feed record it corrects, in the statement that writes
--     the reference (include/cdrflow/billing/rerate.py, feed.py): it names rows that exist;
--   * deleting a charge or a feed record that another row refers to, or changing its id, is
--     refused (trigger cdrflow_refuse_referenced_delete, errcode foreign_key_violation), as the
--     foreign keys refused it; the partial indexes below serve its lookup and cost a billrun
--     nothing (its NULLs are not indexed).
ALTER TABLE charges DROP CONSTRAINT charges_replaces_fkey;
ALTER TABLE billing_feed DROP CONSTRAINT billing_feed_correction_of_fkey;
CREATE INDEX charges_replaces_idx ON charges (replaces) WHERE replaces IS NOT NULL;
CREATE INDEX billing_feed_correction_of_idx ON billing_feed (correction_of) WHERE correction_of IS NOT NULL;

DROP TRIGGER charges_referenced ON charges;
CREATE TRIGGER charges_referenced BEFORE DELETE OR UPDATE OF id ON charges
    FOR EACH ROW EXECUTE FUNCTION cdrflow_refuse_referenced_delete('billing_feed', 'charge_id', 'charges', 'replaces');
CREATE TRIGGER billing_feed_referenced BEFORE DELETE OR UPDATE OF id ON billing_feed
    FOR EACH ROW EXECUTE FUNCTION cdrflow_refuse_referenced_delete('billing_feed', 'correction_of');

COMMENT ON COLUMN charges.replaces IS
    'the charge this one replaced (a rerating: that charge''s current is now false); NULL for a first charge (no foreign key: written from the charge it replaces, and a charge that another replaces cannot be deleted)';
COMMENT ON COLUMN billing_feed.correction_of IS
    'for a rerating''s records: the id of the earlier charge record of the same call that they correct; NULL for a first charge (no foreign key: written from that record, and a record that another corrects cannot be deleted)';
