"""Record identity: each format's own key for one record (issue 10, item 1).

The Asterisk files are rebuilt from Asterisk's documentation of ``cdr_csv`` (``build_csv_record``
and the CDR specification of Asterisk 12+): ``Dial(SIP/301&SIP/200@trunk)`` forks one channel (one
``uniqueid``, one ``start``) into one record per dialled peer, told apart by ``dstchannel``,
``disposition``, ``duration`` and ``sequence``; a ``Local/`` channel writes a record per half,
tied by ``linkedid``; a queue writes one record per agent it rang; an attended transfer writes a
new record for the transferred party's channel. Every record must be in the warehouse.
"""

from __future__ import annotations

import io
import shutil

from sqlalchemy import create_engine, text
from tests.test_loader import q, register

from cdrflow.config import settings
from cdrflow.formats import get_parser
from cdrflow.formats.base import ParseOptions
from cdrflow.formats.mapping_schema import MappingError, check_mapping
from cdrflow.intake.claims import requeue
from cdrflow.loading.transaction import load_file
from cdrflow.warehouse import migrations
from conftest import add_carrier

DAY = "2026-11-02"


def line(
    uniqueid: str,
    sequence: str | None,
    *,
    channel: str,
    dstchannel: str,
    disposition: str,
    start: str = "10:00:00",
    answer: str = "",
    end: str = "10:00:30",
    duration: int = 30,
    billsec: int = 0,
    app: str = "Dial",
    data: str = "SIP/301&SIP/200@trunk,30",
    src: str = "100",
    dst: str = "301",
    linkedid: str | None = None,
    width: int = 21,
) -> str:
    """One Master.csv line of ``width`` columns (16, 18 or 21), every field quoted."""
    fields = [
        "",
        src,
        dst,
        "internal",
        f'"Alice" <{src}>',
        channel,
        dstchannel,
        app,
        data,
        f"{DAY} {start}",
        f"{DAY} {answer}" if answer else "",
        f"{DAY} {end}",
        str(duration),
        str(billsec),
        disposition,
        "DOCUMENTATION",
        uniqueid,
        "",
        "",
        linkedid or uniqueid,
        sequence or "",
    ][:width]
    return ",".join('"' + f.replace('"', '""') + '"' for f in fields) + "\n"


# Dial(SIP/301&SIP/200&SIP/202): one channel, three records; 301 answers, 200 rings out, 202 is busy
FORK = [
    line("1700000000.10", "1", channel="SIP/100-0000000a", dstchannel="SIP/301-0000000b", disposition="ANSWERED",
         answer="10:00:05", billsec=25),
    line("1700000000.10", "2", channel="SIP/100-0000000a", dstchannel="SIP/200-0000000c", disposition="NO ANSWER",
         dst="200", end="10:00:05", duration=5),
    line("1700000000.10", "3", channel="SIP/100-0000000a", dstchannel="SIP/202-0000000d", disposition="BUSY",
         dst="202", end="10:00:01", duration=1),
]  # fmt: skip
# Dial(Local/200@internal): the caller's record and the Local channel's other half, one linkedid
LOCAL_CHAIN = [
    line("1700000100.20", "4", channel="SIP/100-00000010", dstchannel="Local/200@internal-00000001;1",
         disposition="ANSWERED", data="Local/200@internal", dst="200", start="11:00:00", answer="11:00:04",
         end="11:01:00", duration=60, billsec=56),
    line("1700000100.21", "5", channel="Local/200@internal-00000001;2", dstchannel="SIP/200-00000011",
         disposition="ANSWERED", data="SIP/200,30", dst="200", start="11:00:00", answer="11:00:04", end="11:01:00",
         duration=60, billsec=56, linkedid="1700000100.20"),
]  # fmt: skip
# Queue(support): the caller's channel rings agent 201 (no answer), then 202 (answers)
QUEUE = [
    line("1700000200.30", "6", channel="SIP/trunk-00000020", dstchannel="SIP/201-00000021", disposition="NO ANSWER",
         app="Queue", data="support", src="15551230001", dst="500", start="12:00:00", end="12:00:15", duration=15),
    line("1700000200.30", "7", channel="SIP/trunk-00000020", dstchannel="SIP/202-00000022", disposition="ANSWERED",
         app="Queue", data="support", src="15551230001", dst="500", start="12:00:00", answer="12:00:20",
         end="12:03:00", duration=180, billsec=160),
]  # fmt: skip
# Attended transfer: A calls B, B consults C, B completes the transfer: a new record of A's
# channel bridged to C (same uniqueid as A's first record, its own sequence)
TRANSFER = [
    line("1700000300.40", "8", channel="SIP/100-00000030", dstchannel="SIP/200-00000031", disposition="ANSWERED",
         dst="200", start="13:00:00", answer="13:00:03", end="13:01:00", duration=60, billsec=57),
    line("1700000300.42", "9", channel="SIP/200-00000031", dstchannel="SIP/300-00000032", disposition="ANSWERED",
         src="200", dst="300", start="13:00:30", answer="13:00:33", end="13:01:00", duration=30, billsec=27,
         linkedid="1700000300.40"),
    line("1700000300.40", "10", channel="SIP/100-00000030", dstchannel="SIP/300-00000032", disposition="ANSWERED",
         dst="300", start="13:00:00", answer="13:01:00", end="13:05:00", duration=300, billsec=240,
         linkedid="1700000300.40"),
]  # fmt: skip
ALL = FORK + LOCAL_CHAIN + QUEUE + TRANSFER


def data(lines: list[str]) -> bytes:
    return "".join(lines).encode()


def counts(engine, file_id: int) -> tuple:
    return tuple(
        q(
            engine,
            "SELECT status, calls_loaded, calls_duplicate, calls_rejected FROM cdr_files WHERE id = :i",
            i=file_id,
        )[0]
    )


def warehouse(engine) -> list[tuple]:
    return [
        tuple(r)
        for r in q(
            engine,
            "SELECT carrier_call_id, extras ->> 'sequence', extras ->> 'dstchannel', disposition FROM calls "
            "ORDER BY (extras ->> 'sequence')::int NULLS LAST, extras ->> 'dstchannel'",
        )
    ]


def test_every_record_of_forks_local_chains_queues_and_transfers_is_loaded(engine, store):
    add_carrier(engine, "pbx", file_type="asterisk_csv")
    f = register(engine, store, data(ALL), "Master.csv", carrier="pbx").file_id

    result = load_file(engine, store, f)

    assert (result.status, result.loaded, result.duplicates, result.rejected) == ("loaded", 10, 0, 0), result.message
    assert counts(engine, f) == ("loaded", 10, 0, 0)
    assert [r[1] for r in warehouse(engine)] == [str(s) for s in range(1, 11)]
    fork = q(engine, "SELECT disposition, record_key FROM calls WHERE carrier_call_id = '1700000000.10' ORDER BY 2")
    assert [tuple(r) for r in fork] == [
        ("ANSWERED", "1700000000.10#1"),
        ("NO ANSWER", "1700000000.10#2"),
        ("BUSY", "1700000000.10#3"),
    ]
    # the Local/ chain's two records stay tied by linkedid
    assert q(engine, "SELECT count(*) FROM calls WHERE extras ->> 'linkedid' = '1700000100.20'")[0][0] == 2


def test_the_same_records_in_another_file_load_once_and_the_same_bytes_are_not_loaded_again(engine, store):
    add_carrier(engine, "pbx", file_type="asterisk_csv")
    first = register(engine, store, data(FORK + QUEUE), "Master.csv", carrier="pbx").file_id
    assert load_file(engine, store, first).loaded == 5
    again = register(engine, store, data(FORK + QUEUE), "Master-copy.csv", carrier="pbx")
    assert again.is_duplicate  # same SHA1: never loaded
    overlap = register(engine, store, data(QUEUE + LOCAL_CHAIN), "Master.csv.1", carrier="pbx").file_id

    result = load_file(engine, store, overlap)

    assert (result.loaded, result.duplicates) == (2, 2)
    assert counts(engine, overlap) == ("loaded", 2, 2, 0)
    assert q(engine, "SELECT count(*), count(DISTINCT record_key) FROM calls")[0] == (7, 7)
    assert q(engine, "SELECT status FROM cdr_files WHERE id = :i", i=again.file_id)[0][0] == "duplicate"


def test_a_true_repeated_line_is_a_counted_repeat_and_a_rerun_loads_nothing_twice(engine, store):
    add_carrier(engine, "pbx", file_type="asterisk_csv")
    f = register(engine, store, data(FORK + [FORK[1]] + TRANSFER), "Master.csv", carrier="pbx").file_id

    assert load_file(engine, store, f).status == "loaded"
    assert counts(engine, f) == ("loaded", 6, 1, 0)
    before = q(engine, "SELECT record_key, line_number FROM calls ORDER BY 1")
    requeue(engine, [f], "operator re-run")
    assert load_file(engine, store, f).status == "loaded"

    assert counts(engine, f) == ("loaded", 6, 1, 0)
    assert q(engine, "SELECT record_key, line_number FROM calls ORDER BY 1") == before


def test_files_without_sequence_keep_forked_records_apart(engine, store):
    """16 columns (no uniqueid: channel@start is the call id) and 18 (uniqueid, userfield):
    the fallback key keeps the forks apart, and the same line twice is still one record."""
    add_carrier(engine, "pbx", file_type="asterisk_csv")
    sixteen = [
        line("", None, channel="SIP/100-0000000a", dstchannel=d, disposition=disp, end=end, duration=dur, width=16)
        for d, disp, end, dur in (
            ("SIP/301-0000000b", "ANSWERED", "10:00:30", 30),
            ("SIP/200-0000000c", "NO ANSWER", "10:00:05", 5),
            ("SIP/202-0000000d", "BUSY", "10:00:01", 1),
        )
    ]
    eighteen = [
        line("1700000500.50", None, channel="SIP/100-00000050", dstchannel=d, disposition=disp, width=18)
        for d, disp in (("SIP/301-00000051", "ANSWERED"), ("SIP/200-00000052", "NO ANSWER"))
    ]
    a = register(engine, store, data(sixteen + [sixteen[2]]), "Master16.csv", carrier="pbx").file_id
    b = register(engine, store, data(eighteen), "Master18.csv", carrier="pbx").file_id

    assert load_file(engine, store, a).status == "loaded"
    assert load_file(engine, store, b).status == "loaded"

    assert counts(engine, a) == ("loaded", 3, 1, 0)
    assert counts(engine, b) == ("loaded", 2, 0, 0)
    keys = [r[0] for r in q(engine, "SELECT record_key FROM calls WHERE file_id = :i ORDER BY 1", i=b)]
    assert keys == [
        "1700000500.50|SIP/200-00000052|Dial|SIP/301&SIP/200@trunk,30|NO ANSWER|30|0",
        "1700000500.50|SIP/301-00000051|Dial|SIP/301&SIP/200@trunk,30|ANSWERED|30|0",
    ]
    assert {r[0] for r in q(engine, "SELECT carrier_call_id FROM calls WHERE file_id = :i", i=a)} == {
        f"SIP/100-0000000a@{DAY} 10:00:00"
    }


def test_a_systemname_prefix_appearing_mid_file_still_loads_every_record(engine, store):
    add_carrier(engine, "pbx", file_type="asterisk_csv")
    renamed = [r.replace('"1700000200.30"', '"pbx1-1700000200.30"') for r in QUEUE]
    f = register(engine, store, data(FORK + renamed), "Master.csv", carrier="pbx").file_id

    assert load_file(engine, store, f).status == "loaded"

    assert counts(engine, f) == ("loaded", 5, 0, 0)
    assert q(engine, "SELECT count(*) FROM calls WHERE carrier_call_id = 'pbx1-1700000200.30'")[0][0] == 2


def test_mapping_key_names_the_record_identity(engine, store, tmp_path):
    """Two legs share a call id; the mapping's ``key`` adds the leg, and both load."""
    mapping = tmp_path / "legs.yaml"
    mapping.write_text(
        "header: true\ncolumns: {carrier_call_id: call_id, start_time: start}\nkey: [carrier_call_id, leg]\n"
    )
    add_carrier(engine, "legs", file_type="mapped", mapping=str(mapping))
    body = b"call_id,leg,start\nc1,A,2026-11-02T10:00:00Z\nc1,B,2026-11-02T10:00:00Z\nc1,B,2026-11-02T10:00:00Z\n"
    f = register(engine, store, body, "legs.csv", carrier="legs").file_id

    assert load_file(engine, store, f).status == "loaded"

    assert counts(engine, f) == ("loaded", 2, 1, 0)
    assert [r[0] for r in q(engine, "SELECT record_key FROM calls ORDER BY 1")] == ["c1|A", "c1|B"]


def test_mapping_key_default_and_refusals():
    chunks = list(
        get_parser("mapped").parse(
            io.BytesIO(b"id,start\nm1,2026-11-02T10:00:00Z\n"),
            ParseOptions(mapping={"header": True, "columns": {"carrier_call_id": "id", "start_time": "start"}}),
        )
    )
    assert list(chunks[0].calls["record_key"]) == ["m1"]  # default: the call id
    for bad in ({"key": []}, {"key": "id"}):
        try:
            check_mapping({"columns": {"carrier_call_id": "id", "start_time": "s"}, **bad})
        except MappingError as exc:
            assert "key" in str(exc)
        else:
            raise AssertionError(f"{bad} accepted")


def test_migration_008_keeps_calls_loaded_before_it(new_database, tmp_path, store):
    """A warehouse at 007 with a loaded file: after 008 nothing is lost, its records are still
    found as duplicates by a later file, a forked file loads whole and a re-run doubles nothing."""
    url = new_database()
    engine = create_engine(url)
    before = tmp_path / "sql"
    before.mkdir()
    for path in sorted(settings.SQL_DIR.glob("*.sql")):
        if path.name < "008":
            shutil.copy(path, before / path.name)
    migrations.upgrade(engine, before)
    with engine.begin() as conn:  # the carriers table as it was at 007 (carriers.upsert writes later columns)
        conn.execute(text("INSERT INTO carriers (code, name, file_type) VALUES ('pbx', 'PBX', 'asterisk_csv')"))
    old_lines = [FORK[0]] + LOCAL_CHAIN  # what the code before 008 loaded (it dropped the other forks)
    old = _register_as_before_008(engine, store, data(old_lines), "Old.csv")
    _load_as_before_008(engine, old, old_lines)
    short = [  # 18 columns: no sequence, the fallback key is rebuilt from the row's columns
        line("1700000600.60", None, channel="SIP/100-00000060", dstchannel=d, disposition=disp, width=18)
        for d, disp in (("SIP/301-00000061", "ANSWERED"), ("SIP/200-00000062", "NO ANSWER"))
    ]
    old_short = _register_as_before_008(engine, store, data(short[:1]), "Old18.csv")
    _load_as_before_008(engine, old_short, short[:1])

    assert [m.version for m in migrations.upgrade(engine, settings.SQL_DIR)][:1] == [8]

    keys = q(engine, "SELECT record_key FROM calls ORDER BY 1")
    assert [r[0] for r in keys] == [
        "1700000000.10#1",
        "1700000100.20#4",
        "1700000100.21#5",
        "1700000600.60|SIP/301-00000061|Dial|SIP/301&SIP/200@trunk,30|ANSWERED|30|0",
    ]
    new_short = register(engine, store, data(short), "New18.csv", carrier="pbx").file_id
    assert load_file(engine, store, new_short).status == "loaded"
    assert counts(engine, new_short) == ("loaded", 1, 1, 0)
    new = register(engine, store, data(FORK + QUEUE), "New.csv", carrier="pbx").file_id
    assert load_file(engine, store, new).status == "loaded"
    assert counts(engine, new) == ("loaded", 4, 1, 0)  # FORK[0] was there before the migration
    requeue(engine, [old], "operator re-run")
    assert load_file(engine, store, old).status == "loaded"
    # FORK[0], which both files carry, went over to the new file (re-run rule): counts moved
    assert (counts(engine, old), counts(engine, new)) == (("loaded", 2, 1, 0), ("loaded", 5, 0, 0))
    assert q(engine, "SELECT count(*), count(DISTINCT record_key) FROM calls")[0] == (9, 9)
    assert q(engine, "SELECT count(*) FROM call_duplicates WHERE record_key = '1700000000.10#1'")[0][0] == 1
    engine.dispose()


def _register_as_before_008(engine, store, content: bytes, name: str) -> int:
    """A file recorded as the registry at 007 did (the columns of that day; today's registry
    writes columns that came later)."""
    blob = store.put_stream(io.BytesIO(content))
    with engine.begin() as conn:
        return conn.execute(
            text(
                "INSERT INTO cdr_files (file_name, stored_file_id, file_source, carrier, file_type, file_path, "
                "original_hash, file_size) VALUES (:n, :k, 'sftp', 'pbx', 'asterisk_csv', :u, :h, :s) RETURNING id"
            ),
            {"n": name, "k": blob.key, "u": blob.url, "h": blob.sha1, "s": blob.size},
        ).scalar_one()


def _load_as_before_008(engine, file_id: int, lines: list[str]) -> None:
    """The rows the loader before migration 008 wrote for ``lines`` (no record_key column)."""
    (chunk,) = get_parser("asterisk_csv").parse(io.BytesIO(data(lines)), ParseOptions())
    calls = chunk.calls
    with engine.begin() as conn:
        conn.execute(text("SELECT cdrflow_ensure_calls_partition(:t)"), {"t": f"{DAY} 00:00:00+00"})
        for row in calls.itertuples():
            conn.execute(
                text(
                    "INSERT INTO calls (carrier, carrier_call_id, start_time, file_id, line_number, disposition, "
                    "duration_seconds, billing_seconds, extras) "
                    "VALUES ('pbx', :id, :st, :f, :n, :d, :dur, :bill, CAST(:extras AS jsonb))"
                ),
                {
                    "id": row.carrier_call_id,
                    "st": row.start_time.to_pydatetime(),
                    "f": file_id,
                    "n": int(row.line_number),
                    "d": row.disposition,
                    "dur": int(row.duration_seconds),
                    "bill": int(row.billing_seconds),
                    "extras": row.extras,
                },
            )
        conn.execute(
            text(
                "UPDATE cdr_files SET status = 'loaded', calls_loaded = :n, calls_duplicate = 0, calls_rejected = 0 "
                "WHERE id = :i"
            ),
            {"n": len(calls), "i": file_id},
        )


def test_freeswitch_and_kazoo_legs_are_records_of_their_own():
    """FreeSWITCH ``legs=ab``: an A and a B leg, each its own uuid; Kazoo: an A and a B leg,
    each its own call_id, tied by other_leg_call_id."""
    fs = (
        b'"Alice","100","200","default","2026-11-02 10:00:00","2026-11-02 10:00:05","2026-11-02 10:01:00",'
        b'"60","55","NORMAL_CLEARING","a-uuid","b-uuid","","PCMU","PCMU"\n'
        b'"Alice","100","200","default","2026-11-02 10:00:00","2026-11-02 10:00:05","2026-11-02 10:01:00",'
        b'"60","55","NORMAL_CLEARING","b-uuid","","","PCMU","PCMU"\n'
    )
    (chunk,) = get_parser("freeswitch_csv").parse(io.BytesIO(fs), ParseOptions())
    assert list(chunk.calls["record_key"]) == ["a-uuid", "b-uuid"]
    kazoo = (
        b'[{"call_id": "leg-a", "other_leg_call_id": "leg-b", "timestamp": 63937216860, "duration_seconds": 60},'
        b' {"call_id": "leg-b", "other_leg_call_id": "leg-a", "timestamp": 63937216860, "duration_seconds": 55}]'
    )
    (chunk,) = get_parser("kazoo_json").parse(io.BytesIO(kazoo), ParseOptions())
    assert list(chunk.calls["record_key"]) == ["leg-a", "leg-b"]
