-- Issue 10: what a leg carries beside its record.
--   call_key      the call the leg belongs to (Asterisk linkedid, FreeSWITCH a-leg uuid, Kazoo
--                 interaction or A-leg call id, a mapping's `call:`); legs of one call share it.
--                 NULL on rows loaded before this migration: such a leg is its own call
--                 (carrier_call_id), see 010 for the backfill and the call views.
--   quality       the checks a loaded leg failed whose severity is `flag` (a JSON array of
--                 check names, as in rejected_rows.reasons); NULL when it passed everything.
--   caller_e164, callee_e164            the numbers in E.164 (+ and digits) by the carrier's
--                 dial plan, NULL when a number is not a telephone number.
--   caller_number_type, callee_number_type  e164 | national | short | extension | sip_uri |
--                 anonymous | unknown (see cdrflow.formats.numbering).
-- All nullable and without defaults: adding them rewrites no existing partition.

ALTER TABLE calls ADD COLUMN call_key text;
ALTER TABLE calls ADD COLUMN quality jsonb;
ALTER TABLE calls ADD COLUMN caller_e164 text;
ALTER TABLE calls ADD COLUMN callee_e164 text;
ALTER TABLE calls ADD COLUMN caller_number_type text;
ALTER TABLE calls ADD COLUMN callee_number_type text;
