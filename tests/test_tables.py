"""``cdrflow.warehouse.tables`` declares the warehouse's tables once for the API and the reports:
each declaration must match the migrated warehouse, column for column and type for type, so a
migration that changes a table cannot leave a statement built on a column that no longer exists
(or reads it as the wrong type)."""

from __future__ import annotations

import pytest
from sqlalchemy import inspect
from sqlalchemy.dialects import postgresql

from cdrflow.warehouse import tables

DIALECT = postgresql.dialect()


@pytest.mark.parametrize("table", list(tables.metadata.tables.values()), ids=lambda t: t.name)
def test_declared_columns_match_the_migrated_warehouse(engine, table):
    with engine.connect() as conn:
        reflected = {c["name"]: c["type"].compile(dialect=DIALECT) for c in inspect(conn).get_columns(table.name)}
    declared = {c.name: c.type.compile(dialect=DIALECT) for c in table.columns}
    assert reflected, f"table {table.name} is not in the migrated warehouse"
    assert sorted(set(reflected) - set(declared)) == [], f"{table.name}: columns the migrations add, not declared"
    assert sorted(set(declared) - set(reflected)) == [], f"{table.name}: declared columns the warehouse lacks"
    wrong = {name: (declared[name], reflected[name]) for name in declared if declared[name] != reflected[name]}
    assert wrong == {}, f"{table.name}: declared type != warehouse type"
