"""The data dictionary: every table, view and function of the warehouse with its ``COMMENT``, as
Markdown (``cdrflow db dictionary`` prints it; ``docs/data-dictionary.md`` is its output).

The comments live in the migrations next to what they describe, so the dictionary is read from
the catalog rather than written by hand: it cannot say something the warehouse does not. Month
partitions of ``calls`` are left out (the parent describes them), and so is whatever an
extension installed.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from sqlalchemy import Connection, text

KINDS = {"r": "table", "p": "table, partitioned", "v": "view", "m": "materialized view", "f": "foreign table"}

_RELATIONS = text("""
SELECT c.oid, c.relname AS name, c.relkind AS kind, obj_description(c.oid, 'pg_class') AS comment
FROM pg_class c
JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE n.nspname = current_schema() AND c.relkind IN ('r', 'p', 'v', 'm', 'f') AND NOT c.relispartition
  AND NOT EXISTS (SELECT 1 FROM pg_depend d
                  WHERE d.classid = 'pg_class'::regclass AND d.objid = c.oid AND d.deptype = 'e')
ORDER BY c.relname
""")

_COLUMNS = text("""
SELECT a.attrelid AS oid, a.attname AS name, format_type(a.atttypid, a.atttypmod) AS type,
       col_description(a.attrelid, a.attnum) AS comment
FROM pg_attribute a
JOIN pg_class c ON c.oid = a.attrelid
JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE n.nspname = current_schema() AND c.relkind IN ('r', 'p', 'v', 'm', 'f') AND NOT c.relispartition
  AND a.attnum > 0 AND NOT a.attisdropped
ORDER BY a.attrelid, a.attnum
""")

_FUNCTIONS = text("""
SELECT p.proname AS name, pg_get_function_arguments(p.oid) AS arguments,
       pg_get_function_identity_arguments(p.oid) AS identity, pg_get_function_result(p.oid) AS result,
       obj_description(p.oid, 'pg_proc') AS comment
FROM pg_proc p
JOIN pg_namespace n ON n.oid = p.pronamespace
WHERE n.nspname = current_schema()
  AND NOT EXISTS (SELECT 1 FROM pg_depend d
                  WHERE d.classid = 'pg_proc'::regclass AND d.objid = p.oid AND d.deptype = 'e')
ORDER BY p.proname, pg_get_function_identity_arguments(p.oid)
""")


@dataclass(frozen=True)
class Column:
    name: str
    type: str
    comment: str | None


@dataclass(frozen=True)
class Relation:
    name: str
    kind: str  # a key of KINDS
    comment: str | None
    columns: tuple[Column, ...]


@dataclass(frozen=True)
class Function:
    name: str
    arguments: str  # with defaults, as CREATE FUNCTION spells them
    identity: str  # the argument types that name it (COMMENT ON FUNCTION name(identity))
    result: str
    comment: str | None


def relations(conn: Connection) -> list[Relation]:
    """Every table and view of the warehouse's schema (not partitions), with its columns."""
    columns: dict[int, list[Column]] = {}
    for r in conn.execute(_COLUMNS):
        columns.setdefault(r.oid, []).append(Column(r.name, r.type, r.comment))
    return [Relation(r.name, r.kind, r.comment, tuple(columns.get(r.oid, ()))) for r in conn.execute(_RELATIONS)]


def functions(conn: Connection) -> list[Function]:
    """Every function of the warehouse's schema (the analysts' range functions, triggers, ...)."""
    return [Function(r.name, r.arguments, r.identity, r.result, r.comment) for r in conn.execute(_FUNCTIONS)]


def _blank(comment: str | None) -> bool:
    return comment is None or not comment.strip()


def missing_comments(conn: Connection) -> list[str]:
    """What has no comment yet, one line each (``column calls.quality``): empty when the
    dictionary is complete."""
    missing: list[str] = []
    for rel in relations(conn):
        if _blank(rel.comment):
            missing.append(f"{KINDS[rel.kind].split(',')[0]} {rel.name}")
        missing += [f"column {rel.name}.{c.name}" for c in rel.columns if _blank(c.comment)]
    missing += [f"function {f.name}({f.identity})" for f in functions(conn) if _blank(f.comment)]
    return missing


_CODE = re.compile(r"(`[^`]*`)")


def _prose(value: str | None, cell: bool = False) -> str:
    """A comment as Markdown: on one line, with the characters Markdown would read as markup
    (``*any``, ``<deck>``) escaped outside code spans, and ``|`` escaped in table cells."""
    if value is None or not value.strip():
        return "(no comment)"
    parts = _CODE.split(" ".join(value.split()))
    out = [p if p.startswith("`") else p.replace("\\", "\\\\").replace("*", "\\*").replace("<", "&lt;") for p in parts]
    joined = "".join(out)
    return joined.replace("|", "\\|") if cell else joined


def _relation_section(rel: Relation) -> list[str]:
    lines = [f"### `{rel.name}`", "", f"*{KINDS[rel.kind]}*. {_prose(rel.comment)}", ""]
    lines += ["| column | type | description |", "|---|---|---|"]
    lines += [f"| `{c.name}` | {_prose(c.type, cell=True)} | {_prose(c.comment, cell=True)} |" for c in rel.columns]
    return [*lines, ""]


def _function_section(fn: Function) -> list[str]:
    return [
        f"### `{fn.name}`",
        "",
        f"`{fn.name}({fn.arguments})` returns `{fn.result}`",
        "",
        _prose(fn.comment),
        "",
    ]


HEADER = """# Data dictionary

Every table, view and function of the cdrflow warehouse with its description, generated from the
`COMMENT`s of the migrations in `sql/` by `cdrflow db dictionary`. Do not edit this file: change
or add a comment in a new migration, then regenerate it on a warehouse migrated to the latest
`sql/`:

    cdrflow db upgrade && cdrflow db dictionary > docs/data-dictionary.md

`tests/test_data_dictionary.py` fails when an object has no comment or when this file differs
from what the command prints. The month partitions of `calls` (`calls_YYYY_MM`) are not listed:
`calls` describes them.
"""


def markdown(conn: Connection) -> str:
    """The data dictionary of the warehouse ``conn`` is connected to, as one Markdown text."""
    rels, fns = relations(conn), functions(conn)
    tables = [r for r in rels if r.kind in ("r", "p", "f")]
    views = [r for r in rels if r.kind in ("v", "m")]
    lines = [HEADER]
    lines += ["Tables: " + ", ".join(f"[`{r.name}`](#{r.name})" for r in tables), ""]
    lines += ["Views: " + ", ".join(f"[`{r.name}`](#{r.name})" for r in views), ""]
    lines += ["Functions: " + ", ".join(f"`{f.name}`" for f in fns), ""]
    lines += ["## Tables", ""]
    for rel in tables:
        lines += _relation_section(rel)
    lines += ["## Views", ""]
    for rel in views:
        lines += _relation_section(rel)
    lines += ["## Functions", ""]
    for fn in fns:
        lines += _function_section(fn)
    return "\n".join(lines).rstrip("\n") + "\n"
