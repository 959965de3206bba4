-- Issue 11 (speed): the last two references a billrun writes on every row, checked by what the
-- run does instead of a per-row foreign key, as sql/028 did for the billrun and deck versions.
--
-- billing_feed.charge_id: every feed record the application writes is selected, in the same
-- statement, from the charges of its own run (a billrun's kept rows, a rerating's new charges)
-- or, for a reversal, from a charge that an earlier feed record already names
-- (include/cdrflow/billing/feed.py). The foreign key's lookup of the charge, FOR KEY SHARE, one
-- per record, was a third of the feed's INSERT ... SELECT (200,000 records: 3.0 s -> 2.0 s with
-- both keys below gone). A charge that a feed record names cannot be deleted (or its id
-- changed): trigger charges_referenced, as the foreign key refused it.
--
-- invoice_lines.billrun_id: written by the run's own transaction after it locked its billrun
-- FOR KEY SHARE (charging.hold_references); deleting a billrun that invoice lines name is
-- refused by billruns_referenced, now with invoice_lines among the tables it asks.
--
-- Not kept: TRUNCATE charges CASCADE no longer empties billing_feed, nor TRUNCATE billruns
-- CASCADE invoice_lines; truncate them together. Kept: billing_feed.correction_of and
-- charges.replaces (set by reratings only; NULL, and so unchecked, on a billrun's rows).

ALTER TABLE billing_feed DROP CONSTRAINT billing_feed_charge_id_fkey;
ALTER TABLE invoice_lines DROP CONSTRAINT invoice_lines_billrun_id_fkey;

DROP TRIGGER billruns_referenced ON billruns;
CREATE TRIGGER billruns_referenced BEFORE DELETE OR UPDATE OF id ON billruns
    FOR EACH ROW EXECUTE FUNCTION cdrflow_refuse_referenced_delete(
        'charges', 'billrun_id', 'billing_feed', 'billrun_id', 'invoice_lines', 'billrun_id');
-- billing_feed's UNIQUE (charge_id, record) serves the trigger's lookup
CREATE TRIGGER charges_referenced BEFORE DELETE OR UPDATE OF id ON charges
    FOR EACH ROW EXECUTE FUNCTION cdrflow_refuse_referenced_delete('billing_feed', 'charge_id');

COMMENT ON COLUMN billing_feed.charge_id IS
    'the charge (charges.id) the record shows; for a reversal, the replaced charge (no foreign key: written from the run''s own charges, and a charge that a record names cannot be deleted)';
COMMENT ON COLUMN invoice_lines.billrun_id IS
    'the billrun (billruns.id; no foreign key, checked once per run: the writer locks its billrun, and a billrun that invoice lines name cannot be deleted)';
