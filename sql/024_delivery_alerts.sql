-- Issue 14: a carrier that has not delivered by its deadline (key `deadline` in the carrier file,
-- in the carrier's time zone) is notified once per carrier and day.
--
-- The cdrflow_delivery_deadlines DAG checks every 15 minutes; the primary key is what keeps it
-- to one notification: the row is written in the transaction that sends the notification, so a
-- notification that could not be sent leaves no row and the next check tries again.

CREATE TABLE delivery_alerts (
    carrier      text NOT NULL REFERENCES carriers (code),
    day          date NOT NULL,
    deadline     timestamptz NOT NULL,
    last_file_id bigint REFERENCES cdr_files (id) ON DELETE SET NULL,
    notified_by  text NOT NULL,
    sent_at      timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (carrier, day)
);

COMMENT ON TABLE delivery_alerts IS
    'Carriers that had delivered no file by their deadline (carrier file key deadline, in the carrier''s time zone), one row per carrier and day: the notification sent (cdrflow_delivery_deadlines DAG).';
COMMENT ON COLUMN delivery_alerts.carrier IS 'the carrier that was late';
COMMENT ON COLUMN delivery_alerts.day IS 'the day without a file, in the carrier''s time zone';
COMMENT ON COLUMN delivery_alerts.deadline IS 'the deadline that passed: the carrier''s deadline on that day, in UTC';
COMMENT ON COLUMN delivery_alerts.last_file_id IS 'the carrier''s last file before that day (not a duplicate); NULL when it never delivered';
COMMENT ON COLUMN delivery_alerts.notified_by IS 'the notifier that sent it (CDRFLOW_NOTIFIER or the SmtpNotifier and its recipients), or "none (no notifier configured)": logged only';
COMMENT ON COLUMN delivery_alerts.sent_at IS 'when the notification was sent';
