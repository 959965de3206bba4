"""The writer: COPYs a file's chunks into their month partitions, on the loading transaction's
connection, from a thread of its own while the next chunk is parsed and validated."""

from __future__ import annotations

import queue
import threading

import numpy as np
import pandas as pd
import psycopg2.errors
from psycopg2 import sql as pgsql

from cdrflow.loading.payloads import CALL_COLUMNS, Batch

_COPY_ATTEMPTS = 10  # COPY rounds of one batch while concurrent files commit the same calls

_READ_BYTES = 4 << 20  # bytes handed to libpq per call while COPYing

REPEATS_KEPT = 20  # repeats remembered with the line they repeat (the log lists these; the count is whole)


class Writer(threading.Thread):
    """Owns the database connection while loading: COPYs (and, when the primary key refuses
    a row, key lookups), chunk by chunk. A call that repeats an earlier chunk of this file, an
    earlier file or a file loading alongside is refused by the key in every case."""

    def __init__(self, raw_conn, carrier: str, file_id: int, kinds: dict[str, str] | None = None):
        super().__init__(daemon=True)
        self.conn, self.carrier, self.file_id, self.kinds = raw_conn, carrier, file_id, kinds
        self.inbox: queue.Queue[Batch | None] = queue.Queue(maxsize=2)
        self.loaded = 0
        self.flagged = 0  # calls loaded with a quality flag (a subset of ``loaded``)
        self.qualities: list[str] = []  # the quality of loaded rows the parser flagged
        self.duplicates = 0
        self.repeat_lines: list[tuple[int, int, int]] = []  # (line, file it repeats, that file's line)
        self.per_day: dict[str, int] = {}
        self.error: BaseException | None = None
        self.partitions: dict[str, str] = {}

    def run(self) -> None:
        try:
            while (batch := self.inbox.get()) is not None:
                self.write(batch)
        except BaseException as exc:  # handed to the main thread, which rolls back
            self.error = exc
            while self.inbox.get() is not None:  # drain so the producer never blocks
                pass

    def _existing(self, cur, frame: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
        """Mask of the rows of ``frame`` whose key is already in calls (primary key probes),
        and the file each such call belongs to (0 elsewhere); the first :data:`REPEATS_KEPT`
        go to ``repeat_lines`` with the line they repeat."""
        ids = frame["record_key"].to_numpy(dtype=object)
        starts = frame["start_time"].dt.strftime("%Y-%m-%d %H:%M:%S.%f+00").to_numpy(dtype=object)
        # One primary-key probe per key (LATERAL ... LIMIT 1 is always a nested loop). A plain
        # join lets the planner pick a merge or hash join over the whole partition when its
        # statistics are stale (a partition filled since the last ANALYZE looks tiny): that
        # made each small file on a busy day scan every call of the month (seen: 0.15 s at
        # 150k calls, growing with the month).
        cur.execute(
            "SELECT k.i, hit.file_id, hit.line_number FROM unnest(%s::text[], %s::timestamptz[]) "
            "WITH ORDINALITY AS k(id, st, i) "
            "CROSS JOIN LATERAL (SELECT c.file_id, c.line_number FROM calls c WHERE c.carrier = %s "
            "AND c.record_key = k.id AND c.start_time = k.st LIMIT 1) AS hit",
            (list(ids), list(starts), self.carrier),
        )
        found = cur.fetchall()
        mask = np.zeros(len(frame), dtype=bool)
        owners = np.zeros(len(frame), dtype=np.int64)
        at = np.array([r[0] - 1 for r in found], dtype=np.int64)
        mask[at] = True
        owners[at] = [r[1] for r in found]
        room = REPEATS_KEPT - len(self.repeat_lines)
        if room > 0 and len(found):
            lines = frame["line_number"].to_numpy()
            self.repeat_lines += sorted((int(lines[r[0] - 1]), int(r[1]), int(r[2] or 0)) for r in found)[:room]
        return mask, owners

    def _record(self, cur, frame: pd.DataFrame, refused: np.ndarray, owners: np.ndarray) -> None:
        """Note which rows of this file were refused as another file's calls (call_duplicates):
        a re-run of that file hands such a call over to this one instead of deleting it."""
        theirs = refused & (owners != self.file_id)  # (a repeat of this file's own earlier chunk: no)
        if not theirs.any():
            return
        rows = frame[theirs]
        cur.execute(
            "INSERT INTO call_duplicates (file_id, line_number, carrier, carrier_call_id, record_key, start_time) "
            "SELECT %s, n, %s, id, k, st FROM unnest(%s::integer[], %s::text[], %s::text[], %s::timestamptz[]) "
            "AS t(n, id, k, st)",
            (
                self.file_id,
                self.carrier,
                [int(n) for n in rows["line_number"]],
                list(rows["carrier_call_id"].to_numpy(dtype=object)),
                list(rows["record_key"].to_numpy(dtype=object)),
                list(rows["start_time"].dt.strftime("%Y-%m-%d %H:%M:%S.%f+00").to_numpy(dtype=object)),
            ),
        )

    def _partition(self, cur, month_key: str) -> str:
        if month_key not in self.partitions:
            cur.execute("SELECT cdrflow_ensure_calls_partition(%s::timestamptz)", (month_key + "-01 00:00:00+00",))
            self.partitions[month_key] = cur.fetchone()[0]
        return self.partitions[month_key]

    def write(self, batch: Batch) -> None:
        frame = batch.frame
        with self.conn.cursor() as cur:
            for month, *_ in batch.payloads:  # outside the savepoint below: created for good
                self._partition(cur, month)
            # Optimistic: a call that is already in the warehouse (from an earlier file, from
            # one loading at this moment, or from an earlier chunk of this file) is rare, and the
            # primary key checks every row during COPY anyway. Copy first; only when the key
            # refuses a row, roll back to the savepoint, look the keys up and copy the rest.
            # A file loading at the same moment with the same call holds this COPY until it
            # commits (then the key refuses the row) or rolls back (then the row goes in).
            # The lookup sees committed calls only: a file loading alongside may commit one
            # more of these keys before the next COPY, hence the loop (each round either
            # succeeds or waited for another file's commit).
            for attempt in range(1, _COPY_ATTEMPTS + 1):
                cur.execute("SAVEPOINT cdrflow_batch")
                try:
                    self._copy(cur, batch)
                except psycopg2.errors.UniqueViolation:
                    cur.execute("ROLLBACK TO SAVEPOINT cdrflow_batch")
                    if attempt == _COPY_ATTEMPTS:
                        raise
                    existing, owners = self._existing(cur, frame)
                    self._record(cur, frame, existing, owners)
                    self.duplicates += int(existing.sum())
                    frame = frame[~existing]
                    batch = Batch.prepare(frame, self.carrier, self.file_id, self.kinds)
                else:
                    cur.execute("RELEASE SAVEPOINT cdrflow_batch")
                    break
            for day_key, count in batch.per_day.items():
                self.per_day[day_key] = self.per_day.get(day_key, 0) + count
            self.loaded += sum(rows for _, rows, _, _ in batch.payloads)
            if "quality" in frame:
                flagged = frame["quality"].dropna()
                self.flagged += len(flagged)
                self.qualities += [q for q in flagged if '"parse:' in q]  # (rare: lines read as Latin-1)

    def _copy(self, cur, batch: Batch) -> None:
        for month, _rows, fmt, payload in batch.payloads:
            payload.seek(0)
            cur.copy_expert(
                pgsql.SQL("COPY {} ({}) FROM STDIN WITH (FORMAT {})").format(
                    pgsql.Identifier(self._partition(cur, month)),
                    pgsql.SQL(", ").join(map(pgsql.Identifier, CALL_COLUMNS)),
                    pgsql.SQL(fmt),
                ),
                payload,
                size=_READ_BYTES,
            )

    def record_days(self) -> None:
        """Add this file's calls to call_days (same transaction as the calls)."""
        if not self.per_day:
            return
        with self.conn.cursor() as cur:
            cur.execute(
                "INSERT INTO call_days (carrier, day, calls) "
                "SELECT %s, d, n FROM unnest(%s::date[], %s::bigint[]) AS t(d, n) "
                "ON CONFLICT (carrier, day) DO UPDATE SET calls = call_days.calls + EXCLUDED.calls",
                (self.carrier, sorted(self.per_day), [self.per_day[d] for d in sorted(self.per_day)]),
            )
