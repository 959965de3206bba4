"""Register every file in a local folder (the upload drop and the demo's inbox)."""

from __future__ import annotations

import logging
from pathlib import Path

from sqlalchemy import Engine

from cdrflow.intake.rawstore import RawStore
from cdrflow.intake.registry import Registration, register_file

log = logging.getLogger(__name__)


def register_folder(
    engine: Engine, store: RawStore, folder: Path, *, carrier: str, file_source: str = "upload", pattern: str = "*"
) -> list[Registration]:
    """Register the regular files of ``folder`` matching ``pattern``, in name order.

    Hidden files and files ending in ``.part`` or ``.tmp`` (still being written) are skipped.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"no such folder: {folder}")
    results = []
    for path in sorted(folder.glob(pattern)):
        if not path.is_file() or path.name.startswith(".") or path.suffix in (".part", ".tmp"):
            continue
        results.append(
            register_file(
                engine,
                store,
                path,
                file_name=path.name,
                carrier=carrier,
                file_source=file_source,
                source_uri=path.resolve().as_uri(),
            )
        )
    return results
