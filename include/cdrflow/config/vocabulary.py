"""The words cdrflow accepts, written once: file sources, source kinds, file types, deliveries.

The command line (choices, help texts), the carrier file's schema, the registry and the parsers'
registry all read them from here. The warehouse enforces the same lists (``sql/001_registry.sql``:
the ``file_source`` CHECK, the ``file_types`` rows, the carrier code CHECK); a test compares them.
"""

from __future__ import annotations

# How a file reached cdrflow: cdr_files.file_source.
FILE_SOURCES: tuple[str, ...] = ("upload", "email", "sftp", "ftp", "bucket", "api")

# The kinds of source a carrier's entry in carriers.yaml can name; one collector DAG per kind.
SOURCE_KINDS: tuple[str, ...] = ("mailbox", "sftp", "ftp", "bucket")

# The parsers' registry: file type name -> "module:Class" (imported only when a file is parsed).
FILE_TYPES: dict[str, str] = {
    "asterisk_csv": "cdrflow.formats.asterisk_csv:AsteriskCsvParser",
    "kazoo_json": "cdrflow.formats.kazoo_json:KazooJsonParser",
    "freeswitch_csv": "cdrflow.formats.freeswitch_csv:FreeswitchCsvParser",
    "telnyx_csv": "cdrflow.formats.telnyx_csv:TelnyxCsvParser",
    "billing_feed_csv": "cdrflow.formats.billing_feed_csv:BillingFeedCsvParser",
    "mapped": "cdrflow.formats.mapped:MappedParser",
}

# How often a carrier sends a file (carriers.delivery).
DELIVERIES: tuple[str, ...] = ("daily", "monthly")

# Which leg of a call is billed (carriers.yaml ``billable_leg``; the call views of
# sql/010_calls_by_call.sql apply it): answered_longest (the answered leg with the most billing
# seconds), originating (the leg whose call id is the call's key: the A-leg), every_leg (each leg
# bills on its own), merged (the legs are pieces of one record).
BILLABLE_LEG_RULES: tuple[str, ...] = ("answered_longest", "originating", "every_leg", "merged")
# The rule a format bills by when its carrier names none (the same defaults are in sql/010).
DEFAULT_BILLABLE_LEG: dict[str, str] = {
    "asterisk_csv": "answered_longest",
    "freeswitch_csv": "originating",
    "kazoo_json": "originating",
    "telnyx_csv": "every_leg",
    "billing_feed_csv": "every_leg",
    "mapped": "every_leg",
}

# What a remote (SFTP/FTP) source does with a file once it is registered.
AFTER_ACTIONS: tuple[str, ...] = ("keep", "delete", "move")

# A carrier code: the carriers table's CHECK (code ~ '^[a-z0-9][a-z0-9_.-]*$').
CARRIER_CODE_PATTERN = r"^[a-z0-9][a-z0-9_.-]*$"
CARRIER_CODE_RULE = "lower-case letters, digits, '_', '.', '-', starting with a letter or digit"


def one_of(words) -> str:
    """``a, b or c``: a list of accepted words for a help text or a message."""
    words = list(words)
    return words[0] if len(words) == 1 else f"{', '.join(words[:-1])} or {words[-1]}"
