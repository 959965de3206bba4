"""The CDRs API's SQL: SQLAlchemy Core statements over ``calls``, every value a bound parameter.

One shape reads a leg with what its documents need: the call's columns, ``extras`` (json, read as
text and decoded once), whether its file was uploaded (``imported``: sources ``upload`` and
``api``, seed 002's "tagged as imported"), its file's format, and its current sell charge
(``charges``, the billing properties), joined on the charge's unique current key (carrier,
record_key, start_time, side) so a leg has at most one.

**What the range filters.** A Kazoo CDR's ``timestamp`` is when the record was written, at
hangup, and ``created_from``/``created_to`` select on it (``api-contract.md`` §A3.5 item 9). The
leg's timestamp here is its end: ``end_time``, else ``start_time + duration_seconds``, else
``start_time``. ``calls`` is partitioned by month of ``start_time`` and has no index on the end
(an index would cost every load), so the query also bounds ``start_time`` to
[created_from - 1 day, created_to]: PostgreSQL then scans only the partitions of those months. The
margin means a leg that lasted more than a day before ending inside the range is not listed (no
real call leg does; a record claiming so is most likely a bad duration).

**Order and pages.** Rows come in the leg's timestamp order, then by primary key, so the order is
total and a page key (:mod:`cdrflow.api.cdr_ids`) says exactly where a page starts: newest first by
default, as Kazoo lists CDRs (``ascending=true`` or ``descending=false`` reverse it).

**Filters** (``filter_<field>=<value>``, Kazoo's query-string filters) compare one whitelisted
field for equality: :data:`FILTERS` maps the Kazoo field name to its column. A name outside it is
refused (400) before any SQL exists, so no request text ever becomes SQL.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta

from sqlalchemy import (
    ColumnElement,
    DateTime,
    Interval,
    Select,
    Text,
    and_,
    cast,
    false,
    func,
    literal,
    literal_column,
    select,
    tuple_,
)

from cdrflow.api.cdr_ids import CallKey, PageKey
from cdrflow.api.errors import bad_request
from cdrflow.api.kazoo import TimeRange
from cdrflow.warehouse import tables

IMPORTED_SOURCES = ("upload", "api")  # cdr_files.file_source of files people uploaded
START_MARGIN = timedelta(days=1)  # how long before its end a listed leg may start (see above)
MAX_FILTER_VALUE = 256

# The columns of a leg the documents read, by type.
_TEXT_COLUMNS = (
    "carrier",
    "record_key",
    "carrier_call_id",
    "other_leg_call_id",
    "direction",
    "caller_number",
    "caller_name",
    "callee_number",
    "callee_name",
    "from_uri",
    "to_uri",
    "hangup_cause",
    "disposition",
    "account_id",
    "user_id",
    "realm",
    "authorizing_id",
)
_TIME_COLUMNS = ("start_time", "answer_time", "end_time")
_INT_COLUMNS = ("duration_seconds", "billing_seconds", "ringing_seconds", "hangup_code")

# The tables are declared once, in cdrflow.warehouse.tables; the statements use them aliased.
calls = tables.calls.alias("c")
cdr_files = tables.cdr_files.alias("f")
charges = tables.charges.alias("ch")

c = calls.c

# The leg's timestamp: its end (see the module docstring).
moment = func.coalesce(
    c.end_time,
    c.start_time + c.duration_seconds * literal_column("interval '1 second'", Interval),
    c.start_time,
).label("moment")

_SORT = (moment, c.carrier, c.record_key, c.start_time)


def _hangup_code(value: str) -> ColumnElement[bool]:
    """``sip:487`` or ``487``, as Kazoo writes the code and as the column keeps it."""
    digits = value.removeprefix("sip:")
    if not digits.isdigit() or len(digits) > 3:
        raise bad_request(f"filter_hangup_code must be a SIP code such as sip:487 or 487, got {value[:40]!r}")
    return c.hangup_code == int(digits)


def _imported(value: str) -> ColumnElement[bool]:
    lowered = value.lower()
    if lowered not in ("true", "false"):
        raise bad_request(f"filter_imported must be true or false, got {value[:40]!r}")
    flag = func.coalesce(cdr_files.c.file_source.in_(IMPORTED_SOURCES), false())
    return flag if lowered == "true" else ~flag


def _equals(name: str) -> Callable[[str], ColumnElement[bool]]:
    col = c[name]
    return lambda value: col == value


# Kazoo field name (and dotted custom_channel_vars name) -> the condition it filters on.
FILTERS: dict[str, Callable[[str], ColumnElement[bool]]] = {
    "call_id": _equals("carrier_call_id"),
    "other_leg_call_id": _equals("other_leg_call_id"),
    "call_direction": _equals("direction"),
    "caller_id_number": _equals("caller_number"),
    "caller_id_name": _equals("caller_name"),
    "callee_id_number": _equals("callee_number"),
    "callee_id_name": _equals("callee_name"),
    "from_uri": _equals("from_uri"),
    "to_uri": _equals("to_uri"),
    "hangup_cause": _equals("hangup_cause"),
    "hangup_code": _hangup_code,
    "disposition": _equals("disposition"),
    "owner_id": _equals("user_id"),
    "custom_channel_vars.owner_id": _equals("user_id"),
    "custom_channel_vars.account_id": _equals("account_id"),
    "custom_channel_vars.realm": _equals("realm"),
    "custom_channel_vars.authorizing_id": _equals("authorizing_id"),
    "imported": _imported,
}


def filter_condition(field: str, value: str) -> ColumnElement[bool]:
    """The condition of ``filter_<field>=<value>``; 400 for a field outside the whitelist."""
    make = FILTERS.get(field)
    if make is None:
        known = ", ".join(sorted(FILTERS))
        raise bad_request(f"filter_{field[:60]} is not a field CDRs can be filtered on (filter_ one of: {known})")
    if len(value) > MAX_FILTER_VALUE:
        raise bad_request(f"filter_{field} is longer than {MAX_FILTER_VALUE} characters")
    return make(value)


def _documents() -> Select:
    """Every column the documents read, from a leg, its file and its current sell charge."""
    charge_on = and_(
        charges.c.carrier == c.carrier,
        charges.c.record_key == c.record_key,
        charges.c.start_time == c.start_time,
        charges.c.side == literal_column("'sell'"),
        charges.c.current,
    )
    imported = func.coalesce(cdr_files.c.file_source.in_(IMPORTED_SOURCES), false())
    return select(
        *(c[name] for name in _TEXT_COLUMNS),
        *(c[name] for name in _TIME_COLUMNS),
        *(c[name] for name in _INT_COLUMNS),
        cast(c.extras, Text).label("extras"),
        moment,
        imported.label("imported"),
        cdr_files.c.file_type,
        charges.c.cost.label("charge_cost"),
        charges.c.currency.label("charge_currency"),
        charges.c.destination.label("charge_destination"),
        cast(charges.c.breakdown, Text).label("charge_breakdown"),
    ).select_from(
        calls.outerjoin(cdr_files, cdr_files.c.id == c.file_id).outerjoin(charges, charge_on),
    )


def one(account_id: str, key: CallKey) -> Select:
    """One leg by its primary key, if it is ``account_id``'s."""
    return _documents().where(
        c.carrier == key.carrier,
        c.record_key == key.record_key,
        c.start_time == key.start_time,
        c.account_id == account_id,
    )


def listing(
    account_id: str,
    window: TimeRange,
    *,
    user_id: str | None = None,
    conditions: list[ColumnElement[bool]] | tuple[()] = (),
    start: PageKey | None = None,
    ascending: bool = False,
    limit: int | None = None,
) -> Select:
    """An account's (or one of its users') legs whose timestamp is in ``window``, in order."""
    stmt = _documents().where(
        c.account_id == account_id,
        c.start_time >= window.start - START_MARGIN,  # partition pruning (see the module docstring)
        c.start_time < window.end_exclusive,
        moment >= window.start,
        moment < window.end_exclusive,
        *conditions,
    )
    if user_id is not None:
        stmt = stmt.where(c.user_id == user_id)
    if start is not None:
        at = tuple_(
            literal(start.moment, DateTime(timezone=True)),
            literal(start.call.carrier, Text),
            literal(start.call.record_key, Text),
            literal(start.call.start_time, DateTime(timezone=True)),
        )
        sort = tuple_(*_SORT)
        stmt = stmt.where(sort >= at if ascending else sort <= at)
    stmt = stmt.order_by(*(part.asc() if ascending else part.desc() for part in _SORT))
    return stmt.limit(limit) if limit is not None else stmt
