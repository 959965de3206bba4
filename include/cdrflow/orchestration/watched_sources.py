"""The sources of one kind that a watcher in the triggerer watches (the bucket watcher,
:mod:`cdrflow.orchestration.source_watch`; the mailbox watcher,
:mod:`cdrflow.orchestration.mail_watch`): the carrier file read again only when it changes, and
the last good file's sources kept while a changed one cannot be read."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from cdrflow.config.errors import one_line

# (where, problem or None): the watcher logs a problem once when it first appears or changes, and
# the recovery
Report = Callable[[str, "str | None"], None]


class SourcesOfKind:
    def __init__(self, kind: str, carriers_file: str | None = None):
        self.kind = kind
        self.carriers_file = carriers_file  # default: the CDRFLOW_CARRIERS_FILE of the process
        self._configs: tuple[Any, list] | None = None  # (file stamp, sources)

    def current(self, report: Report) -> list:
        """(carrier, source) of the kind in the carrier file; a file that cannot be read is
        reported as ``carrier file`` and the last good file's sources are kept."""
        from cdrflow.config import carrier_file

        path = Path(self.carriers_file) if self.carriers_file else carrier_file.config_path()
        try:
            st = path.stat()
            stamp = (str(path), st.st_mtime_ns, st.st_size)
            if self._configs is None or self._configs[0] != stamp:
                self._configs = (stamp, carrier_file.sources_of_kind(carrier_file.load(path), self.kind))
            report("carrier file", None)
        except Exception as exc:  # keep watching what the last good file named
            report("carrier file", one_line(exc))
        return self._configs[1] if self._configs else []
