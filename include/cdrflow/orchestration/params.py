"""What operators type into the processing DAG's form, made into values the tasks use.

Airflow's form turns a list param into one value per line, and a value typed as ``3, 4`` on one
line (or given in ``--conf`` as a string) is one string: both are read here as file ids, so
that the operator never has to know which form the UI wanted.
"""

from __future__ import annotations

import re

from cdrflow.config.errors import CdrflowError


def file_id_list(value: object, name: str = "file ids") -> list[int]:
    """File ids from ``[3, 4]``, ``["3", "4"]``, ``"3, 4"``, ``"3 4"``, ``3`` or nothing, in order,
    each once. Anything else is a one-line error naming the param and the bad value."""
    if value is None or value == "":
        return []
    items = value if isinstance(value, list | tuple) else [value]
    out: list[int] = []
    for item in items:
        if isinstance(item, bool):
            raise CdrflowError(f"{name}: {item!r} is not a file id")
        if isinstance(item, int):
            parts = [str(item)]
        else:
            parts = [p for p in re.split(r"[\s,;]+", str(item)) if p]
        for part in parts:
            if not part.isdigit() or int(part) < 1:
                raise CdrflowError(f"{name}: {part!r} is not a file id (a positive whole number)")
            if int(part) not in out:
                out.append(int(part))
    return out
