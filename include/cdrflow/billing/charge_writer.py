"""Writing a billrun's charges while it rates the next batch: :class:`ChargeWriter`.

Each batch comes as two COPY texts made by the billrun, whose rows carry their charge ids (drawn
from ``charges``' own identity sequence beforehand, :func:`draw_ids`): the charges (every column
of :data:`charging.CHARGE_COLUMNS` after ``id``) and what the run keeps of them in the temporary
table :data:`charging.CHARGED` (its invoice lines, counts and feed read that, not ``charges``).

Two ways to write a batch, the same rows in the end:

- ``direct`` (a run's first try): COPY straight into ``charges``, and COPY the kept rows. Nothing
  is written twice; measured at 200,000 charges in batches of 5,000: 1.9-2.1 s of the server's
  time, against 2.6-3.3 s for the staged way below. A leg that another billrun charged after this
  run read its legs makes the COPY fail on the unique index of current charges
  (:func:`is_conflict`): the run then starts again, ``safe`` (billrun.py);
- ``safe``: COPY into a temporary staging table, then ``INSERT ... ON CONFLICT DO NOTHING`` into
  ``charges`` (a leg charged meanwhile is skipped, never charged twice) and the kept rows of the
  legs skipped are deleted again, so CHARGED holds exactly the charges inserted.

The thread writes on the run's own connection while the caller reads and rates the next batch on
another: PostgreSQL writes on one core while Python rates on the other (psycopg2 releases the GIL
while it waits on the server). At most two batches wait, so memory stays flat; the first error
stops the writes and is raised to the caller.
"""

from __future__ import annotations

import io
import queue
import threading
from time import perf_counter
from typing import Any

from sqlalchemy import Connection, text

from cdrflow.billing.charging import CHARGE_COLUMNS, CHARGED, CHARGED_COLUMNS, stage

STAGING = "billrun_staging"
_COLUMNS = ", ".join(("id", *CHARGE_COLUMNS))  # names of charging, never user text
_KEPT = ", ".join(CHARGED_COLUMNS)
_COPY_CHARGES = "COPY charges (" + _COLUMNS + ") FROM STDIN"
_COPY_STAGING = "COPY " + STAGING + " (" + _COLUMNS + ") FROM STDIN"
_COPY_KEPT = "COPY " + CHARGED + " (" + _KEPT + ") FROM STDIN"
# safe: the staged rows into charges, skipping a leg charged meanwhile; its kept row deleted again
_MOVE = (
    "WITH moved AS (INSERT INTO charges ("
    + _COLUMNS
    + ") OVERRIDING SYSTEM VALUE SELECT "
    + _COLUMNS
    + " FROM "
    + STAGING
    + " ON CONFLICT (carrier, record_key, start_time, side) WHERE current DO NOTHING RETURNING id) "
    "DELETE FROM " + CHARGED + " k USING " + STAGING + " s WHERE k.id = s.id AND s.id NOT IN (SELECT id FROM moved)"
)
# the one unique index a billrun's charges can collide on (a leg charged by another run meanwhile)
CURRENT_KEY = "charges_current_key"


def is_conflict(exc: BaseException) -> bool:
    """Whether ``exc`` (a driver error, possibly wrapped by SQLAlchemy) is a unique violation of
    :data:`CURRENT_KEY`: a leg of the batch got a current charge after the run read its legs."""
    orig = getattr(exc, "orig", exc)
    diag = getattr(orig, "diag", None)
    return getattr(orig, "pgcode", None) == "23505" and getattr(diag, "constraint_name", None) == CURRENT_KEY


class IdDrawer:
    """Charge ids for each batch, from the identity sequence of ``charges.id`` (on ``conn``, any
    connection: ``nextval`` is not transactional). One round trip per batch: the ids drawn are
    usually consecutive (only billruns and reratings draw from it), then only their bounds come
    back; when another session drew in between, they are drawn again, one by one."""

    def __init__(self, conn: Connection) -> None:
        self.conn = conn
        self.sequence = conn.execute(text("SELECT pg_get_serial_sequence('charges', 'id')")).scalar_one()

    def draw(self, n: int) -> range | list[int]:
        if n == 0:
            return []
        lo, hi = self.conn.execute(
            text(
                "SELECT min(v), max(v) FROM (SELECT nextval(CAST(:s AS regclass)) AS v FROM generate_series(1, :n)) d"
            ),
            {"s": self.sequence, "n": n},
        ).one()
        if hi - lo + 1 == n:
            return range(lo, hi + 1)
        return sorted(
            r[0]
            for r in self.conn.execute(
                text("SELECT nextval(CAST(:s AS regclass)) FROM generate_series(1, :n)"), {"s": self.sequence, "n": n}
            )
        )


class ChargeWriter:
    """The thread that writes each batch (see the module's doc), ``direct`` or not."""

    def __init__(self, conn: Connection, direct: bool) -> None:
        raw = conn.connection.driver_connection
        assert raw is not None
        if not direct:
            stage(conn, STAGING)
        self._queue: queue.Queue[tuple[str, str] | None] = queue.Queue(maxsize=2)
        self.error: BaseException | None = None
        self.busy = 0.0
        self._thread = threading.Thread(target=self._run, args=(raw, direct), name="billrun-writer", daemon=True)
        self._thread.start()

    def _run(self, raw: Any, direct: bool) -> None:
        try:
            while (batch := self._queue.get()) is not None:
                charges, kept = batch
                began = perf_counter()
                with raw.cursor() as cur:
                    if direct:
                        cur.copy_expert(_COPY_CHARGES, io.StringIO(charges), size=1 << 20)
                        cur.copy_expert(_COPY_KEPT, io.StringIO(kept), size=1 << 20)
                    else:
                        cur.copy_expert(_COPY_STAGING, io.StringIO(charges), size=1 << 20)
                        cur.copy_expert(_COPY_KEPT, io.StringIO(kept), size=1 << 20)
                        cur.execute(_MOVE)
                        cur.execute("TRUNCATE " + STAGING)
                self.busy += perf_counter() - began
        except BaseException as exc:  # handed to the caller, which raises it
            self.error = exc
            while self._queue.get() is not None:  # drain: the caller never blocks on a full queue
                pass

    def put(self, charges: str, kept: str) -> None:
        if self.error is not None:
            raise self.error
        self._queue.put((charges, kept))

    def stop(self) -> None:
        """Wait for the batches queued so far (or for the drain after an error)."""
        self._queue.put(None)
        self._thread.join()
