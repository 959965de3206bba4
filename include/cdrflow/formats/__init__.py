"""CDR formats: one module per type, one interface (:mod:`cdrflow.formats.base`).

Type names (command line, carrier configuration, ``file_types`` table) map to parsers here.
"""

from __future__ import annotations

from importlib import import_module

from cdrflow.formats.base import FormatError, Parser

PARSERS: dict[str, str] = {
    "asterisk_csv": "cdrflow.formats.asterisk_csv:AsteriskCsvParser",
    "kazoo_json": "cdrflow.formats.kazoo_json:KazooJsonParser",
    "freeswitch_csv": "cdrflow.formats.freeswitch_csv:FreeswitchCsvParser",
    "telnyx_csv": "cdrflow.formats.telnyx_csv:TelnyxCsvParser",
    "billing_feed_csv": "cdrflow.formats.billing_feed_csv:BillingFeedCsvParser",
    "mapped": "cdrflow.formats.mapped:MappedParser",
}


def get_parser(file_type: str) -> Parser:
    """The parser for ``file_type``; :class:`FormatError` for an unknown type."""
    try:
        module_name, class_name = PARSERS[file_type].split(":")
    except KeyError:
        raise FormatError(f"unknown file type {file_type!r}; known: {', '.join(sorted(PARSERS))}") from None
    return getattr(import_module(module_name), class_name)()
