"""The quarantine: rows that failed parsing or validation, with line number, raw text (and raw
bytes when they were not valid in the encoding) and reasons, written to ``rejected_rows`` in
the file's loading transaction."""

from __future__ import annotations

import io

import pandas as pd
import pyarrow as pa
import pyarrow.csv as pacsv


class Quarantine:
    """Rejected rows, spooled as COPY text until the end of the file."""

    def __init__(self, file_id: int):
        self.file_id = file_id
        self.rows: list[tuple[int, str | None, bytes | None, list[str]]] = []

    def add(self, line_number: int, raw_text: str | None, reasons: list[str], raw_bytes: bytes | None = None):
        self.rows.append((line_number, raw_text, raw_bytes, reasons))

    def __len__(self) -> int:
        return len(self.rows)

    def write(self, cur) -> None:
        if not self.rows:
            return
        frame = pd.DataFrame(
            {
                "file_id": [self.file_id] * len(self.rows),
                "line_number": [r[0] for r in self.rows],
                "raw_text": [None if r[1] is None else r[1].replace("\x00", "\ufffd") for r in self.rows],
                "raw_bytes": ["\\x" + r[2].hex() if r[2] is not None else None for r in self.rows],
                "reasons": [
                    "{" + ",".join('"' + x.replace("\\", "\\\\").replace('"', '\\"') + '"' for x in r[3]) + "}"
                    for r in self.rows
                ],
            }
        )
        buffer = io.BytesIO()
        pacsv.write_csv(
            pa.Table.from_pandas(frame, preserve_index=False), buffer, pacsv.WriteOptions(include_header=False)
        )
        buffer.seek(0)
        cur.copy_expert(
            "COPY rejected_rows (file_id, line_number, raw_text, raw_bytes, reasons) FROM STDIN WITH (FORMAT csv)",
            buffer,
            size=1 << 20,
        )
