-- Issue 11 (speed): the references a billrun writes for every charge and feed record are checked
-- once per run instead of once per row.
--
-- A foreign key checks each inserted row on its own (PostgreSQL 15 runs one lookup of the parent,
-- FOR KEY SHARE, per row and key): for a day of 200,000 calls the checks of charges.billrun_id,
-- charges.deck_version_id and billing_feed.billrun_id took about a third of writing those rows,
-- for three values (the run's billrun, its deck versions) repeated on every row. They are
-- replaced by what the writers and the parents do instead:
--   * the writers (billruns and reratings, include/cdrflow/billing/charging.py hold_references)
--     lock their billrun row and every deck version their charges name FOR KEY SHARE, once, in
--     the transaction that writes them, and fail when one is missing: what the foreign key's
--     per-row lookup did, set-based;
--   * deleting a billrun or a deck version that a charge or a feed record names, or changing its
--     id, is refused (trigger cdrflow_refuse_referenced_delete, errcode foreign_key_violation),
--     as the foreign keys refused it. A delete waits on the writer's FOR KEY SHARE lock, then
--     sees its committed rows.
-- Not kept: TRUNCATE billruns (or rate_deck_versions) ... CASCADE no longer empties charges;
-- truncate them together. The other foreign keys stay (billing_feed.charge_id keeps TRUNCATE
-- charges CASCADE emptying the feed; invoice_lines.billrun_id; charges.replaces).

ALTER TABLE charges DROP CONSTRAINT charges_billrun_id_fkey;
ALTER TABLE charges DROP CONSTRAINT charges_deck_version_id_fkey;
ALTER TABLE billing_feed DROP CONSTRAINT billing_feed_billrun_id_fkey;

CREATE FUNCTION cdrflow_refuse_referenced_delete() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    i integer;
    named boolean;
BEGIN
    IF TG_OP = 'UPDATE' AND NEW.id IS NOT DISTINCT FROM OLD.id THEN
        RETURN NEW;
    END IF;
    -- arguments: pairs of (table, column) that refer to this table's id; names from the trigger
    -- definitions below, never user text
    FOR i IN 0 .. TG_NARGS / 2 - 1 LOOP
        EXECUTE format('SELECT EXISTS (SELECT 1 FROM %I WHERE %I = $1)', TG_ARGV[2 * i], TG_ARGV[2 * i + 1])
            INTO named USING OLD.id;
        IF named THEN
            RAISE EXCEPTION 'cannot % % % : %.% refers to it', lower(TG_OP), TG_TABLE_NAME, OLD.id,
                TG_ARGV[2 * i], TG_ARGV[2 * i + 1]
                USING ERRCODE = 'foreign_key_violation';
        END IF;
    END LOOP;
    RETURN CASE TG_OP WHEN 'DELETE' THEN OLD ELSE NEW END;
END
$$;

COMMENT ON FUNCTION cdrflow_refuse_referenced_delete() IS
    'Trigger: refuses to delete a row (or change its id) that rows of the tables named in its arguments, pairs of (table, column), refer to; what a foreign key refused, for the references a billrun writes on every row and checks once per run (sql/028_billing_references.sql).';

CREATE TRIGGER billruns_referenced BEFORE DELETE OR UPDATE OF id ON billruns
    FOR EACH ROW EXECUTE FUNCTION cdrflow_refuse_referenced_delete('charges', 'billrun_id', 'billing_feed', 'billrun_id');
CREATE TRIGGER rate_deck_versions_referenced BEFORE DELETE OR UPDATE OF id ON rate_deck_versions
    FOR EACH ROW EXECUTE FUNCTION cdrflow_refuse_referenced_delete('charges', 'deck_version_id');

COMMENT ON COLUMN charges.billrun_id IS
    'the billrun that wrote it (billruns.id; no foreign key, checked once per run: the writer locks its billrun, and a billrun that charges name cannot be deleted)';
COMMENT ON COLUMN charges.deck_version_id IS
    'the deck version in force at the call''s start (rate_deck_versions.id; NULL when none; no foreign key, checked once per run: the writer locks the versions its charges name, and a version that charges name cannot be deleted)';
COMMENT ON COLUMN billing_feed.billrun_id IS
    'the billrun (or rerating) that wrote the record (billruns.id; no foreign key, checked once per run as charges.billrun_id)';
