"""Legs and calls (issue 10, item 2): every record is a leg in ``calls``; ``call_summaries``
makes them into calls, with the answered leg, the talk time and the billable leg.

Each case is rebuilt from its vendor's documentation:
- Asterisk ``cdr_csv`` with ``linkedid``/``sequence`` (the records of tests/test_record_identity.py:
  a forked ``Dial(SIP/301&SIP/200@trunk)``, a ``Local/`` chain, a queue, an attended transfer);
- FreeSWITCH ``mod_cdr_csv`` with ``legs=ab``: an A-leg row naming its B-leg in ``bleg_uuid`` and
  the B-leg's row (which names no one), in one file or in two files, in either order;
- Kazoo CDRs of an A and a B leg naming each other in ``other_leg_call_id`` (and with an
  ``interaction_id``);
- OpenSIPS ``acc`` through ``db_flatstore``: an INVITE line written on its final reply and a
  BYE line (CGRateS' sample files), the BYE in a later file;
- CGRateS partial CSV records of one OriginID, the last piece in a later file.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timezone

from tests.test_loader import q, register
from tests.test_record_identity import FORK, LOCAL_CHAIN, QUEUE, TRANSFER, data

from cdrflow.config import settings
from cdrflow.formats.base import GREGORIAN_OFFSET
from cdrflow.intake.claims import requeue
from cdrflow.loading import legs
from cdrflow.loading.transaction import load_file
from cdrflow.warehouse import carriers
from conftest import add_carrier

SAMPLES = settings.REPO_DIR.parent / "shared" / "samples" / "cgrates"
SUMMARY = (
    "SELECT call_key, legs, record_keys, answered_record_key, billable_record_key, talk_seconds, billable_rule "
    "FROM call_summaries WHERE carrier = :c ORDER BY call_key"
)


def summaries(engine, carrier: str) -> list[tuple]:
    return [tuple(r) for r in q(engine, SUMMARY, c=carrier)]


def load(engine, store, carrier: str, content: bytes, name: str) -> int:
    file_id = register(engine, store, content, name, carrier=carrier).file_id
    result = load_file(engine, store, file_id)
    assert result.status == "loaded", result.message
    return file_id


def every_record_is_a_leg(engine, carrier: str, records: int) -> None:
    assert q(engine, "SELECT count(*) FROM calls WHERE carrier = :c", c=carrier)[0][0] == records
    assert q(engine, "SELECT count(*) FROM call_legs WHERE carrier = :c", c=carrier)[0][0] == records


def rerun(engine, store, file_id: int) -> None:
    requeue(engine, [file_id], "operator re-run")
    assert load_file(engine, store, file_id).status == "loaded"


# --- Asterisk ---------------------------------------------------------------------------------


def test_asterisk_legs_join_by_linkedid_and_the_answered_longest_leg_bills(engine, store):
    add_carrier(engine, "pbx", file_type="asterisk_csv")
    f = load(engine, store, "pbx", data(FORK + LOCAL_CHAIN + QUEUE + TRANSFER), "Master.csv")

    every_record_is_a_leg(engine, "pbx", 10)
    rule = "answered_longest"
    assert summaries(engine, "pbx") == [
        # Dial(SIP/301&SIP/200&SIP/202): one call of three records, 301 answered for 25 s
        ("1700000000.10", 3, ["1700000000.10#1", "1700000000.10#2", "1700000000.10#3"],
         "1700000000.10#1", "1700000000.10#1", 25, rule),
        # Local/ chain: the Local channel's half (uniqueid .21) carries the caller's linkedid
        ("1700000100.20", 2, ["1700000100.20#4", "1700000100.21#5"], "1700000100.20#4", "1700000100.20#4", 56, rule),
        # queue: agent 201 rang out, 202 answered
        ("1700000200.30", 2, ["1700000200.30#6", "1700000200.30#7"], "1700000200.30#7", "1700000200.30#7", 160, rule),
        # attended transfer: the consultation (.42) and the transferred record join the call
        ("1700000300.40", 3, ["1700000300.40#10", "1700000300.40#8", "1700000300.42#9"],
         "1700000300.40#10", "1700000300.40#10", 240, rule),
    ]  # fmt: skip
    call = q(
        engine,
        "SELECT first_start, answer_time, last_end, caller_number, callee_number, billable_legs FROM call_summaries "
        "WHERE carrier = 'pbx' AND call_key = '1700000300.40'",
    )[0]
    assert [v.isoformat() for v in call[:3]] == [
        "2026-11-02T13:00:00+00:00",
        "2026-11-02T13:01:00+00:00",
        "2026-11-02T13:05:00+00:00",
    ]
    assert tuple(call[3:]) == ("100", "300", 1)
    billable = q(engine, "SELECT record_key FROM call_legs WHERE carrier = 'pbx' AND billable ORDER BY 1")
    assert [r[0] for r in billable] == ["1700000000.10#1", "1700000100.20#4", "1700000200.30#7", "1700000300.40#10"]

    before = summaries(engine, "pbx")
    rerun(engine, store, f)
    assert summaries(engine, "pbx") == before


def test_a_format_without_an_other_leg_column_runs_no_join_query(engine, store):
    add_carrier(engine, "pbx", file_type="asterisk_csv")
    with engine.connect() as conn:
        pbx = carriers.get(conn, "pbx")
        assert legs.join_legs(conn, pbx, 1, "asterisk_csv") == 0
        assert not legs.names_other_legs(pbx, "asterisk_csv")
        assert not legs.names_other_legs(pbx, "telnyx_csv")
        assert legs.names_other_legs(pbx, "freeswitch_csv")
        assert legs.names_other_legs(pbx, "kazoo_json")


# --- FreeSWITCH legs=ab -----------------------------------------------------------------------


def fs_line(uuid: str, bleg: str, start: str, answer: str, end: str, duration: int, billsec: int, dest: str) -> str:
    """A row of mod_cdr_csv's "example" template (15 quoted fields)."""
    fields = ["Alice", "1000", dest, "default", start, answer, end, str(duration), str(billsec), "NORMAL_CLEARING",
              uuid, bleg, "acct", "PCMU", "PCMU"]  # fmt: skip
    return ",".join(f'"{f}"' for f in fields) + "\n"


# A calls 15551234567: the A-leg names its B-leg in bleg_uuid; the B-leg's row names no one.
FS_A = fs_line("a1-uuid", "b1-uuid", "2026-11-02 10:00:00", "2026-11-02 10:00:06", "2026-11-02 10:01:06", 66, 60,
               "15551234567")  # fmt: skip
FS_B = fs_line("b1-uuid", "", "2026-11-02 10:00:01", "2026-11-02 10:00:06", "2026-11-02 10:01:06", 65, 60,
               "15551234567")  # fmt: skip
# A call across midnight and a month end: its A-leg is in one day's file, its B-leg in the next
FS_A2 = fs_line("a2-uuid", "b2-uuid", "2026-10-31 23:59:58", "2026-11-01 00:00:05", "2026-11-01 00:02:05", 127, 120,
                "15557654321")  # fmt: skip
FS_B2 = fs_line("b2-uuid", "", "2026-11-01 00:00:01", "2026-11-01 00:00:05", "2026-11-01 00:02:05", 124, 120,
                "15557654321")  # fmt: skip
# an A-leg that was never bridged (no B-leg)
FS_ALONE = fs_line("a3-uuid", "", "2026-11-02 11:00:00", "", "2026-11-02 11:00:20", 20, 0, "15550000000")

FS_CALLS = [
    ("a1-uuid", 2, ["a1-uuid", "b1-uuid"], "a1-uuid", "a1-uuid", 60, "originating"),
    ("a2-uuid", 2, ["a2-uuid", "b2-uuid"], "a2-uuid", "a2-uuid", 120, "originating"),
    ("a3-uuid", 1, ["a3-uuid"], None, "a3-uuid", 0, "originating"),
]


def test_freeswitch_a_and_b_legs_in_one_file_are_one_call_billed_on_the_a_leg(engine, store):
    add_carrier(engine, "fs", file_type="freeswitch_csv")
    load(engine, store, "fs", (FS_B + FS_A + FS_A2 + FS_B2 + FS_ALONE).encode(), "Master.csv")

    every_record_is_a_leg(engine, "fs", 5)
    assert summaries(engine, "fs") == FS_CALLS
    keys = q(engine, "SELECT record_key, call_key FROM calls WHERE carrier = 'fs' ORDER BY 1")
    assert [tuple(r) for r in keys] == [
        ("a1-uuid", "a1-uuid"),
        ("a2-uuid", "a2-uuid"),
        ("a3-uuid", "a3-uuid"),
        ("b1-uuid", "a1-uuid"),
        ("b2-uuid", "a2-uuid"),
    ]


def test_freeswitch_legs_in_two_files_a_day_apart_join_in_either_order_and_reruns_change_nothing(engine, store):
    add_carrier(engine, "fs", file_type="freeswitch_csv")
    # day 1: the A-legs of a1 and a2 (a2 crosses midnight); day 2: their B-legs, the B-leg first
    day1 = load(engine, store, "fs", (FS_A + FS_A2).encode(), "Master-20261101.csv")
    assert [r[0] for r in q(engine, "SELECT call_key FROM call_summaries WHERE carrier = 'fs' ORDER BY 1")] == [
        "a1-uuid",
        "a2-uuid",
    ]
    day2 = load(engine, store, "fs", (FS_B + FS_B2 + FS_ALONE).encode(), "Master-20261102.csv")

    every_record_is_a_leg(engine, "fs", 5)
    assert summaries(engine, "fs") == FS_CALLS
    before = q(engine, "SELECT record_key, call_key, file_id FROM calls ORDER BY 1")
    rerun(engine, store, day1)
    rerun(engine, store, day2)
    rerun(engine, store, day1)
    assert q(engine, "SELECT record_key, call_key, file_id FROM calls ORDER BY 1") == before
    assert summaries(engine, "fs") == FS_CALLS
    # a day's calls without reading the whole table: a2 started on 2026-10-31
    between = q(engine, "SELECT call_key, legs FROM call_summaries_between('2026-10-31', '2026-11-01') ORDER BY 1")
    assert [tuple(r) for r in between] == [("a2-uuid", 2)]


def test_a_b_leg_loaded_before_its_a_leg_joins_it(engine, store):
    add_carrier(engine, "fs", file_type="freeswitch_csv")
    load(engine, store, "fs", FS_B.encode(), "b.csv")
    assert summaries(engine, "fs") == [("b1-uuid", 1, ["b1-uuid"], "b1-uuid", "b1-uuid", 60, "originating")]
    load(engine, store, "fs", FS_A.encode(), "a.csv")
    assert summaries(engine, "fs") == FS_CALLS[:1]


def test_a_chain_of_legs_naming_the_next_is_one_call_whatever_the_order(engine, store):
    """A bridged to B, B's leg bridged on to C (bleg_uuid on both): one call, A's."""
    add_carrier(engine, "fs", file_type="freeswitch_csv")
    a = fs_line("c-a", "c-b", "2026-11-02 12:00:00", "2026-11-02 12:00:02", "2026-11-02 12:01:00", 60, 58, "200")
    b = fs_line("c-b", "c-c", "2026-11-02 12:00:01", "2026-11-02 12:00:02", "2026-11-02 12:01:00", 59, 58, "200")
    c = fs_line("c-c", "", "2026-11-02 12:00:30", "2026-11-02 12:00:31", "2026-11-02 12:01:00", 30, 29, "300")
    load(engine, store, "fs", c.encode(), "1.csv")
    load(engine, store, "fs", a.encode(), "2.csv")
    last = load(engine, store, "fs", b.encode(), "3.csv")

    assert summaries(engine, "fs") == [("c-a", 3, ["c-a", "c-b", "c-c"], "c-a", "c-a", 58, "originating")]
    rerun(engine, store, last)
    assert summaries(engine, "fs") == [("c-a", 3, ["c-a", "c-b", "c-c"], "c-a", "c-a", 58, "originating")]


# --- Kazoo ------------------------------------------------------------------------------------


def kazoo(call_id: str, other: str, direction: str, end: str, duration: int, billing: int, **more) -> str:
    """One Kazoo CDR (JSON lines): timestamp is the hang-up in Gregorian seconds."""
    ended = datetime.fromisoformat(end).replace(tzinfo=UTC)
    record = {
        "call_id": call_id,
        "other_leg_call_id": other,
        "call_direction": direction,
        "caller_id_number": "1000",
        "callee_id_number": "2000",
        "duration_seconds": duration,
        "billing_seconds": billing,
        "ringing_seconds": duration - billing,
        "hangup_cause": "NORMAL_CLEARING",
        "hangup_code": "sip:200",
        "timestamp": int(ended.timestamp()) + GREGORIAN_OFFSET,
        "custom_channel_vars": {"account_id": "acc1"},
        **more,
    }
    return json.dumps(record) + "\n"


# The A-leg (inbound to the switch) and the B-leg it bridged to (outbound), naming each other
KZ_A = kazoo("kz-a", "kz-b", "inbound", "2026-11-02 09:01:10", 70, 60)
KZ_B = kazoo("kz-b", "kz-a", "outbound", "2026-11-02 09:01:10", 65, 60)
# The same with Kazoo's interaction_id on both legs
KZ_IA = kazoo("kz-c", "kz-d", "inbound", "2026-11-02 09:11:10", 40, 30, interaction_id="63910000000-abc")
KZ_IB = kazoo("kz-d", "kz-c", "outbound", "2026-11-02 09:11:10", 35, 30, interaction_id="63910000000-abc")
KZ_CALLS = [
    ("63910000000-abc", 2, ["kz-c", "kz-d"], "kz-c", "kz-c", 30, "originating"),
    ("kz-a", 2, ["kz-a", "kz-b"], "kz-a", "kz-a", 60, "originating"),
]


def test_kazoo_a_and_b_legs_naming_each_other_are_one_call_in_either_order(engine, store):
    add_carrier(engine, "kz", file_type="kazoo_json")
    load(engine, store, "kz", (KZ_B + KZ_IB + KZ_IA + KZ_A).encode(), "cdrs.json")

    every_record_is_a_leg(engine, "kz", 4)
    assert summaries(engine, "kz") == KZ_CALLS


def test_kazoo_b_leg_a_day_before_its_a_leg_and_reruns(engine, store):
    add_carrier(engine, "kz", file_type="kazoo_json")
    first = load(engine, store, "kz", (KZ_B + KZ_IB).encode(), "cdrs-1.json")
    second = load(engine, store, "kz", (KZ_A + KZ_IA).encode(), "cdrs-2.json")

    every_record_is_a_leg(engine, "kz", 4)
    assert summaries(engine, "kz") == KZ_CALLS
    rerun(engine, store, second)
    rerun(engine, store, first)
    assert summaries(engine, "kz") == KZ_CALLS


# --- OpenSIPS INVITE + BYE, CGRateS partials (mappings, billable_leg: merged) ------------------


def test_opensips_invite_and_bye_are_one_call_even_when_the_bye_comes_in_a_later_file(engine, store):
    add_carrier(
        engine,
        "osips",
        file_type="mapped",
        mapping="mappings/opensips_flatstore.yaml",
        config={"billable_leg": "merged"},
    )
    lines = (SAMPLES / "opensips_flatstore_acc_success.log").read_text().splitlines(keepends=True)
    lines[-1] += "" if lines[-1].endswith("\n") else "\n"
    last_bye = lines.pop()  # the last call's BYE arrives in the next file
    missed = (SAMPLES / "opensips_flatstore_missed_calls.log").read_bytes()
    load(engine, store, "osips", "".join(lines).encode() + missed, "acc_1.log")
    later = load(engine, store, "osips", last_bye.encode(), "acc_2.log")

    every_record_is_a_leg(engine, "osips", 8 + 3)
    rows = q(
        engine,
        "SELECT call_key, legs, talk_seconds, answered_record_key IS NOT NULL, split_part(billable_record_key, '|', 2), "
        "caller_number, callee_number FROM call_summaries WHERE carrier = 'osips' ORDER BY first_start",
    )
    assert [tuple(r) for r in rows] == [
        ("dd0c4c617a9919d29a6175cdff223a9e@0:0:0:0:0:0:0:0", 2, 2, True, "INVITE", "1001", "1002"),
        ("0bfdd176d1b93e7df3de5c6f4873ee04@0:0:0:0:0:0:0:0", 1, 0, False, "INVITE", "1001", "1002"),  # 487: missed
        ("214d8f52b566e33a9349b184e72a4cca@0:0:0:0:0:0:0:0", 2, 4, True, "INVITE", "1002", "1001"),
        ("3a63321dd3b325eec688dc2aefb6ac2d@0:0:0:0:0:0:0:0", 2, 4, True, "INVITE", "1001", "1002"),
        ("81880da80a94bda81b425b09009e055c@0:0:0:0:0:0:0:0", 1, 0, False, "INVITE", "1001", "1002"),  # 404
        ("8deaadf2ae9a17809a391f05af31afb0@0:0:0:0:0:0:0:0", 1, 0, False, "INVITE", "1002", "1001"),  # 486 Busy
        ("a58ebaae40d08d6757d8424fb09c4c54@0:0:0:0:0:0:0:0", 2, 2, True, "INVITE", "1001", "1002"),
    ]  # fmt: skip
    before = summaries(engine, "osips")
    rerun(engine, store, later)
    assert summaries(engine, "osips") == before


def test_cgrates_partial_records_of_one_origin_id_merge_into_one_call(engine, store):
    add_carrier(
        engine,
        "cgr",
        file_type="mapped",
        mapping="mappings/cgrates_partial_csv.yaml",
        config={"billable_leg": "merged"},
    )
    pieces = (
        "4986517174963,004986517174964,DE-National,04.07.2016 18:58:55,04.07.2016 18:58:55,1,65,Peak,0.014560,498651,partial\n"
        "4986517174963,004986517174964,DE-National,04.07.2016 19:00:00,04.07.2016 18:58:55,0,15,Offpeak,0.003360,498651,partial\n"
    )
    last = "4986517174963,004986517174964,DE-National,04.07.2016 19:00:15,04.07.2016 18:58:55,0,10,Offpeak,0.00336,498651,complete\n"
    other = "4986517174964,004986517174960,DE-National,04.07.2016 19:05:55,04.07.2016 19:05:55,0,23,Offpeak,0.003360,498652,complete\n"
    load(engine, store, "cgr", (pieces + other).encode(), "partial_1.csv")
    load(engine, store, "cgr", last.encode(), "partial_2.csv")

    every_record_is_a_leg(engine, "cgr", 4)
    rows = q(
        engine,
        "SELECT call_key, legs, talk_seconds, billable_record_key, answer_time, caller_number, billable_rule "
        "FROM call_summaries WHERE carrier = 'cgr' ORDER BY call_key",
    )
    assert [(r[0], r[1], r[2], r[3], r[4].isoformat(), r[5], r[6]) for r in rows] == [
        ("498651", 3, 65 + 15 + 10, "498651@04.07.2016 18:58:55", "2016-07-04T18:58:55+00:00", "4986517174963", "merged"),
        ("498652", 1, 23, "498652@04.07.2016 19:05:55", "2016-07-04T19:05:55+00:00", "4986517174964", "merged"),
    ]  # fmt: skip


def test_billable_leg_is_overridable_per_carrier(engine, store):
    add_carrier(engine, "pbx", file_type="asterisk_csv", config={"billable_leg": "every_leg"})
    load(engine, store, "pbx", data(FORK), "Master.csv")
    assert summaries(engine, "pbx") == [
        ("1700000000.10", 3, ["1700000000.10#1", "1700000000.10#2", "1700000000.10#3"], "1700000000.10#1",
         "1700000000.10#1", 25, "every_leg"),
    ]  # fmt: skip
    assert q(engine, "SELECT count(*) FILTER (WHERE billable) FROM call_legs")[0][0] == 3
    assert q(engine, "SELECT billable_legs FROM call_summaries")[0][0] == 3


def test_a_mapping_declares_its_billable_leg_and_a_carrier_may_override_it():
    from cdrflow.config.carrier_file import parse

    text = """
carriers:
  - code: osips
    file_type: mapped
    mapping: mappings/opensips_acc_csv.yaml
  - code: osips2
    file_type: mapped
    mapping: mappings/opensips_acc_csv.yaml
    billable_leg: every_leg
  - code: generic
    file_type: mapped
    mapping: mappings/cdrstats_cdr_import.yaml
"""
    carriers = {c.code: c.carrier for c in parse(text, "test")}
    assert carriers["osips"].config["billable_leg"] == "merged"  # the mapping's own rule
    assert carriers["osips2"].config["billable_leg"] == "every_leg"  # the carrier's wins
    assert "billable_leg" not in carriers["generic"].config  # the format's default (every_leg)
