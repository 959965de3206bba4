"""Report files in the artifact store: written as a stream, hashed on the way, removed when done.

The store is ``CDRFLOW_ARTIFACT_STORE`` (a local folder, ``<state>/artifacts``, by default;
``s3://[conn_id@]bucket/prefix`` or any fsspec URL through Airflow's ``ObjectStoragePath``), the
one billruns write their invoices to. A report is ``reports/<request id>.csv`` (``.csv.gz`` when
gzipped). A local file is written to a hidden ``.part`` beside it and renamed when complete, so a
download never sees half a report; an S3 object appears whole when its upload ends.

:class:`ReportSink` is what PostgreSQL's COPY output is written into (psycopg2's ``copy_expert``
calls ``write`` once per row): rows are gathered into 1 MiB pieces, gzip-compressed when asked,
counted and SHA-256-hashed as they go to the store, so memory stays flat however large the report.
"""

from __future__ import annotations

import hashlib
import zlib
from pathlib import Path
from typing import Any, BinaryIO
from urllib.parse import unquote, urlsplit

from cdrflow.config import settings
from cdrflow.config.errors import CdrflowError, one_line, shown_url

CHUNK = 1 << 20
PREFIX = "reports"


class StoreUnavailable(CdrflowError):
    """The artifact store cannot take (or give back) a report file."""


class ReportSink:
    """A write-only file for COPY output: buffered, optionally gzipped, counted and hashed."""

    def __init__(self, out: BinaryIO, gzip: bool):
        self.out = out
        self.compressor = zlib.compressobj(6, zlib.DEFLATED, 31) if gzip else None  # 31: gzip framing
        self.buffer = bytearray()
        self.sha256 = hashlib.sha256()
        self.bytes = 0

    def write(self, data: bytes | str) -> int:
        self.buffer += data.encode() if isinstance(data, str) else data
        if len(self.buffer) >= CHUNK:
            self._flush()
        return len(data)

    def _flush(self) -> None:
        piece = bytes(self.buffer)
        self.buffer.clear()
        self._emit(self.compressor.compress(piece) if self.compressor else piece)

    def _emit(self, piece: bytes) -> None:
        if piece:
            self.sha256.update(piece)
            self.bytes += len(piece)
            self.out.write(piece)

    def close(self) -> None:
        """Write what is buffered (and the end of the gzip stream)."""
        self._flush()
        if self.compressor is not None:
            self._emit(self.compressor.flush())


def store_url() -> str:
    return settings.artifact_store_url().rstrip("/")


def key_for(request_id: str, gzip: bool) -> str:
    return f"{PREFIX}/{request_id}.csv" + (".gz" if gzip else "")


def local_path(url: str) -> Path | None:
    parts = urlsplit(url)
    return Path(unquote(parts.path)) if parts.scheme in ("", "file", "local") else None


class ReportFile:
    """Writing one report file: ``with ReportFile(base, key, gzip) as sink: copy into sink``.

    On a clean exit the file is complete in the store (:attr:`uri`); on an error nothing is left
    behind and :class:`StoreUnavailable` says why when the store was the cause."""

    def __init__(self, base_url: str, key: str, gzip: bool):
        self.base_url = base_url.rstrip("/")
        self.uri = f"{self.base_url}/{key}"
        folder = local_path(self.base_url)
        self.local = folder is not None
        if folder is not None:  # a local folder: pathlib, without importing Airflow (2 s of start-up)
            self.final: Any = folder / key
        else:
            from airflow.sdk import ObjectStoragePath  # heavy import: only for remote stores

            self.final = ObjectStoragePath(self.base_url) / key
        self.target = self.final.parent / f".{self.final.name}.part" if self.local else self.final
        self.gzip = gzip
        self._out: Any = None
        self.sink: ReportSink | None = None

    def __enter__(self) -> ReportSink:
        try:
            self.final.parent.mkdir(parents=True, exist_ok=True)
            self._out = self.target.open("wb")
        except Exception as exc:
            raise StoreUnavailable(f"artifact store {shown_url(self.base_url)}: cannot write: {one_line(exc)}") from exc
        self.sink = ReportSink(self._out, self.gzip)
        return self.sink

    def __exit__(self, exc_type, exc, tb) -> None:
        try:
            if exc_type is None and self.sink is not None:
                self.sink.close()
            self._out.close()
            if exc_type is None and self.local:
                self.target.rename(self.final)
        except Exception as error:
            self._discard()
            raise StoreUnavailable(
                f"artifact store {shown_url(self.base_url)}: cannot finish the report: {one_line(error)}"
            ) from error
        if exc_type is not None:
            self._discard()

    def _discard(self) -> None:
        try:
            self.target.unlink(missing_ok=True)
        except Exception:  # the store is what failed; housekeeping removes stale parts
            pass


def remove(uri: str | None) -> bool:
    """Delete a report file by its URL; True when something was deleted. A file already gone is
    not an error (a second delete, housekeeping after a manual clean-up)."""
    if not uri:
        return False
    local = local_path(uri)
    try:
        if local is not None:
            if local.exists():
                local.unlink()
                return True
            return False
        from airflow.sdk import ObjectStoragePath

        path = ObjectStoragePath(uri)
        if not path.exists():
            return False
        path.unlink()
        return True
    except FileNotFoundError:
        return False
    except Exception as exc:
        raise StoreUnavailable(f"cannot delete the report file {shown_url(uri)}: {one_line(exc)}") from exc
