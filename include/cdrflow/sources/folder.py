"""Register every file in a local folder (the ``cdrflow_register_folder`` DAG's form).

Only folders under the configured roots are taken: ``CDRFLOW_REGISTER_ROOTS`` (directories
separated by ``:``; default ``<state>/uploads``). An operator's form must not copy any path of
the worker (its secrets, another tenant's files) into the raw store: a folder outside every
root, and a file whose real path leaves the root (a symbolic link, a pattern with ``..``),
are refused.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from pathlib import Path

from sqlalchemy import Engine

from cdrflow.config import settings
from cdrflow.config.errors import CdrflowError
from cdrflow.intake.rawstore import RawStore
from cdrflow.intake.registry import Registration, register_file

log = logging.getLogger(__name__)

ROOTS_VARIABLE = "CDRFLOW_REGISTER_ROOTS"


class FolderRefused(CdrflowError):
    """The folder is missing or outside every folder that may be registered from."""


def register_roots() -> list[Path]:
    """The folders under which ``register_folder`` may read (``CDRFLOW_REGISTER_ROOTS``)."""
    configured = [p for p in os.environ.get(ROOTS_VARIABLE, "").split(os.pathsep) if p.strip()]
    roots = [Path(p.strip()).expanduser() for p in configured] or [settings.state_dir() / "uploads"]
    return [r.resolve() for r in roots]


def confined(folder: str | os.PathLike, roots: Sequence[Path]) -> Path:
    """``folder`` resolved (a relative one is under the first root), when it is inside a root.

    Raises :class:`FolderRefused` naming the folder and the roots otherwise, or when it is not
    an existing directory."""
    path = Path(folder).expanduser()
    if not path.is_absolute():
        path = roots[0] / path
    real = path.resolve()
    allowed = ", ".join(str(r) for r in roots)
    if not any(real.is_relative_to(r) for r in roots):
        raise FolderRefused(f"folder {str(folder)!r} is outside the folders files may be registered from ({allowed})")
    if not real.is_dir():
        raise FolderRefused(f"folder {str(folder)!r} is not a directory ({real})")
    return real


def register_folder(
    engine: Engine,
    store: RawStore,
    folder: str | os.PathLike,
    *,
    carrier: str,
    file_source: str = "upload",
    pattern: str = "*",
    roots: Sequence[Path] | None = None,
) -> list[Registration]:
    """Register the regular files of ``folder`` matching ``pattern``, in name order.

    ``roots`` defaults to :func:`register_roots`. Hidden files and files ending in ``.part`` or
    ``.tmp`` (still being written) are skipped, and so is, with a warning, a file whose real
    path is outside the folder's root.
    """
    roots = [Path(r).resolve() for r in (register_roots() if roots is None else roots)]
    real = confined(folder, roots)
    root = next(r for r in roots if real.is_relative_to(r))
    results = []
    for path in sorted(real.glob(pattern)):
        if not path.is_file() or path.name.startswith(".") or path.suffix in (".part", ".tmp"):
            continue
        target = path.resolve()
        if not target.is_relative_to(root):
            log.warning("%s leads outside %s (to %s): not registered", path, root, target)
            continue
        results.append(
            register_file(
                engine,
                store,
                target,
                file_name=path.name,
                carrier=carrier,
                file_source=file_source,
                source_uri=target.as_uri(),
            )
        )
    return results
