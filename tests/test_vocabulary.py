"""The words cdrflow accepts are written once (config/vocabulary.py) and agree with the warehouse."""

from __future__ import annotations

import re

from sqlalchemy import text

from cdrflow.config import carrier_file
from cdrflow.config.vocabulary import CARRIER_CODE_PATTERN, DELIVERIES, FILE_SOURCES, FILE_TYPES, SOURCE_KINDS
from cdrflow.formats import get_parser
from conftest import run_cli


def _check(conn, table: str, column: str) -> str:
    return conn.execute(
        text(
            "SELECT pg_get_constraintdef(c.oid) FROM pg_constraint c JOIN pg_class t ON t.oid = c.conrelid "
            "WHERE t.relname = :table AND c.contype = 'c' AND pg_get_constraintdef(c.oid) LIKE :like"
        ),
        {"table": table, "like": f"%{column}%"},
    ).scalar_one()


def test_the_warehouse_accepts_exactly_the_vocabulary(engine):
    with engine.connect() as conn:
        types = set(conn.execute(text("SELECT code FROM file_types")).scalars())
        sources = set(re.findall(r"'(\w+)'", _check(conn, "cdr_files", "file_source")))
        deliveries = set(re.findall(r"'(\w+)'", _check(conn, "carriers", "delivery")))
        code_rule = _check(conn, "carriers", "code ~")
    assert types == set(FILE_TYPES)
    assert sources == set(FILE_SOURCES)
    assert deliveries == set(DELIVERIES)
    assert f"'{CARRIER_CODE_PATTERN}'" in code_rule


def test_every_file_type_has_a_parser_and_every_source_kind_a_schema():
    for name in FILE_TYPES:
        assert get_parser(name) is not None
    assert set(carrier_file.SOURCE_MODELS) == set(SOURCE_KINDS)


def test_the_command_line_offers_the_vocabulary():
    collect = run_cli("collect", "--help")
    assert all(kind in collect.stdout for kind in SOURCE_KINDS)
    register = run_cli("register", "--help")
    assert all(source in register.stdout for source in FILE_SOURCES)
    parse = run_cli("parse", "--help")
    assert all(name in parse.stdout for name in FILE_TYPES)
