"""FreeSWITCH ``mod_cdr_csv`` with its default template.

The stock ``cdr_csv.conf.xml`` sets ``default-template`` to ``example``: 15 quoted fields, no
header: caller_id_name, caller_id_number, destination_number, context, start_stamp,
answer_stamp, end_stamp, duration, billsec, hangup_cause, uuid, bleg_uuid, accountcode,
read_codec, write_codec. Stamps are the switch's local time (the carrier's ``timezone``).
With ``legs=ab`` a call gives an A-leg and a B-leg row, linked by uuid / bleg_uuid; each leg's
``uuid`` is its record identity (``record_key``, the default: the call id). The call
(``call_key``) is the A-leg's uuid: each leg starts with its own, and the A-leg's ``bleg_uuid``
(``other_leg_call_id``) gives the B-leg the A-leg's when both are loaded, in whichever order and
file (:mod:`cdrflow.loading.legs`).
"""

from __future__ import annotations

from cdrflow.formats.base import Chunk
from cdrflow.formats.mapped import BuiltinMappingParser, answered_legs

NAMES = [
    "caller_id_name",
    "caller_id_number",
    "destination_number",
    "context",
    "start_stamp",
    "answer_stamp",
    "end_stamp",
    "duration",
    "billsec",
    "hangup_cause",
    "uuid",
    "bleg_uuid",
    "accountcode",
    "read_codec",
    "write_codec",
]


class FreeswitchCsvParser(BuiltinMappingParser):
    name = "freeswitch_csv"
    mapping = {
        "description": "FreeSWITCH mod_cdr_csv default template",
        "names": NAMES,
        "columns": {
            "carrier_call_id": "uuid",
            "other_leg_call_id": "bleg_uuid",
            "caller_name": "caller_id_name",
            "caller_number": "caller_id_number",
            "callee_number": "destination_number",
            "start_time": "start_stamp",
            "answer_time": "answer_stamp",
            "end_time": "end_stamp",
            "duration_seconds": "duration",
            "billing_seconds": "billsec",
            "hangup_cause": "hangup_cause",
            "account_id": "accountcode",
        },
        "timestamp_format": "%Y-%m-%d %H:%M:%S",
    }

    def finish(self, chunk: Chunk) -> Chunk:
        return Chunk(answered_legs(chunk.calls), chunk.problems)
