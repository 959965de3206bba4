"""The billing feed CSV (seed 004), with the call type / sub type codes of its table.

Header (names compared lower-cased, spaces as ``_``):
``id, datetime, from, to, seconds, type, sub_type, billing_group, billing_period, cost``.
``id`` is the feed's record id (the ``fromid`` cursor of the feed) and becomes the call id;
``datetime`` is ``YYYY-MM-DD HH:MM:SS`` in the carrier's time zone; ``seconds`` is both the
duration and the billed seconds. ``type``/``sub_type`` must be a pair of the seed's table
(a row with another pair is reported, not loaded); the table also gives the direction:
inbound for IB, IM, IS, A3, A8, U0, U1, 3M and IF, outbound for the rest.
"""

from __future__ import annotations

from cdrflow.formats.base import Chunk, RowProblem
from cdrflow.formats.mapped import BuiltinMappingParser

# (type, sub type) -> description, from the seed's table
CALL_TYPES: dict[tuple[str, str], str] = {
    ("IB", "IB"): "Inbound Calls",
    ("2T", "2T"): "On-net calls",
    ("L", "LO"): "Local Overage",
    ("IM", "INM"): "TollFree Inbound Mobile",
    ("0", "0"): "Pin Blocked Calls",
    ("A3", "A3"): "AU 6113 Inbound Nat",
    ("A8", "A8"): "Inbound AU 6118",
    ("U0", "U0"): "Inbound UK 4480",
    ("U1", "U1"): "Inbound US 18xx",
    ("3M", "3M"): "AU 6113 Inbound Mob",
    ("9", "9"): "0900 Calls",
    ("I", "I"): "International Calls",
    ("IS", "IN8"): "TollFree Inbound",
    ("M", "M"): "Calls to Mobile",
    ("L", "L"): "Local Calls",
    ("S", "S"): "National Calls",
    ("8", "8"): "Toll free calls",
    ("O", "O"): "Operator Calls",
    ("M", "MG"): "Calls to Mobile GSM",
    ("M", "M3"): "Calls to Mobile 3G",
    ("IF", "IF"): "Inbound Forwarded",
}
INBOUND_TYPES = {"IB", "IM", "IS", "A3", "A8", "U0", "U1", "3M", "IF"}


class BillingFeedCsvParser(BuiltinMappingParser):
    name = "billing_feed_csv"
    mapping = {
        "description": "billing feed CSV (seed 004)",
        "header": True,
        "normalise_header": True,
        "columns": {
            "carrier_call_id": "id",
            "start_time": "datetime",
            "caller_number": "from",
            "callee_number": "to",
            "duration_seconds": "seconds",
            "billing_seconds": "seconds",
            "call_type": "type",
            "call_sub_type": "sub_type",
        },
        "timestamp_format": "%Y-%m-%d %H:%M:%S",
        "constants": {"record_type": "complete"},
    }

    def finish(self, chunk: Chunk) -> Chunk:
        calls = chunk.calls
        pairs = list(zip(calls["call_type"].fillna(""), calls["call_sub_type"].fillna("")))
        known = [pair in CALL_TYPES for pair in pairs]
        problems = [
            RowProblem(int(n), text, [f"parse:call_type:unknown '{t}/{s}'"])
            for (t, s), ok, n, text in zip(pairs, known, calls["line_number"], calls["raw_text"])
            if not ok
        ]
        calls = calls[known]
        direction = calls["call_type"].isin(list(INBOUND_TYPES)).map({True: "inbound", False: "outbound"})
        return Chunk(calls.assign(direction=direction.astype(calls["direction"].dtype)), chunk.problems + problems)
