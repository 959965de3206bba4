"""Loading registered files into the warehouse: exactly once, all or nothing, bad input kept."""

from __future__ import annotations

import gzip
import io
import zipfile
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import text

from cdrflow.dev import generate
from cdrflow.formats import arrow_text
from cdrflow.intake.registry import register_file
from cdrflow.loading.batches import process_file
from cdrflow.loading.transaction import FileBusy, load_file
from cdrflow.warehouse import carriers
from conftest import add_carrier

ROW = (
    '"acct1","+15551230001","+442071230001","from-trunk","""Alice"" <+15551230001>","SIP/a-1",'
    '"SIP/b-1","Dial","SIP/b,60","2026-11-01 09:00:00","2026-11-01 09:00:05","2026-11-01 09:01:05",'
    '"65","60","ANSWERED","DOCUMENTATION","{uid}",""\n'
)


def rows(*uids: str) -> bytes:
    return "".join(ROW.format(uid=u) for u in uids).encode()


@pytest.fixture
def acme(engine) -> str:
    add_carrier(engine, "acme", file_type="asterisk_csv", config={"timezone": "America/New_York"})
    return "acme"


def register(engine, store, data: bytes, name: str = "Master.csv", carrier: str = "acme"):
    return register_file(engine, store, io.BytesIO(data), file_name=name, carrier=carrier, file_source="sftp")


def q(engine, sql, **params):
    with engine.connect() as conn:
        return conn.execute(text(sql), params).all()


def test_a_file_loads_its_calls_in_utc_with_counts_and_extras(engine, store, acme):
    data = generate.asterisk_bytes(500, seed=11)
    reg = register(engine, store, data)
    result = load_file(engine, store, reg.file_id)
    assert (result.status, result.lines, result.loaded, result.rejected, result.duplicates) == (
        "loaded",
        500,
        500,
        0,
        0,
    )
    (f,) = q(
        engine,
        "SELECT status, lines, calls_loaded, calls_rejected, calls_duplicate, "
        "file_processed_stamp, processing_log FROM cdr_files WHERE id = :i",
        i=reg.file_id,
    )
    assert (f.status, f.lines, f.calls_loaded, f.calls_rejected, f.calls_duplicate) == ("loaded", 500, 500, 0, 0)
    assert f.file_processed_stamp is not None and "500 calls loaded" in f.processing_log
    first = data.split(b"\n")[0].decode().split('","')
    (call,) = q(
        engine,
        "SELECT carrier_call_id, start_time AT TIME ZONE 'UTC' AS start_utc, duration_seconds, "
        "billing_seconds, caller_number, extras, file_id, line_number FROM calls "
        "WHERE carrier_call_id = :id",
        id=first[16],
    )
    local = datetime.strptime(first[9], "%Y-%m-%d %H:%M:%S").replace(tzinfo=ZoneInfo("America/New_York"))
    assert call.start_utc == local.astimezone(UTC).replace(tzinfo=None)  # the file's local time, in UTC
    assert (call.duration_seconds, call.billing_seconds) == (int(first[12]), int(first[13]))
    assert call.caller_number == first[1] and call.file_id == reg.file_id and call.line_number == 1
    assert call.extras["channel"] == first[5] and call.extras["lastapp"] == "Dial"
    assert q(engine, "SELECT sum(calls) FROM call_days WHERE carrier = 'acme'")[0][0] == 500


def test_the_same_call_in_two_files_is_one_call(engine, store, acme):
    first = register(engine, store, rows("u1", "u2", "u3"), "day1.csv")
    second = register(engine, store, rows("u2", "u3", "u4", "u4"), "day1-corrected.csv")
    load_file(engine, store, first.file_id)
    result = load_file(engine, store, second.file_id)
    assert (result.loaded, result.duplicates) == (1, 3)  # u2, u3 from file 1; u4 twice in file 2
    assert q(engine, "SELECT count(*) FROM calls")[0][0] == 4
    assert q(engine, "SELECT calls FROM call_days")[0][0] == 4


def test_repeats_across_chunks_of_one_file_are_found(engine, store, acme, monkeypatch):
    monkeypatch.setattr(arrow_text, "BLOCK_BYTES", 2048)  # a chunk every few lines
    uids = [f"u{i}" for i in range(40)]
    reg = register(engine, store, rows(*uids) + rows(*uids[:10]))  # the first 10 again at the end
    result = load_file(engine, store, reg.file_id)
    assert (result.lines, result.loaded, result.duplicates) == (50, 40, 10)
    assert q(engine, "SELECT count(*) FROM calls")[0][0] == 40


def test_loading_again_changes_nothing(engine, store, acme):
    reg = register(engine, store, rows("a", "b"))
    load_file(engine, store, reg.file_id)
    before = q(engine, "SELECT id, carrier_call_id, loaded_at FROM calls ORDER BY id")
    with pytest.raises(FileBusy, match="not in a loadable status"):
        load_file(engine, store, reg.file_id)
    again = register(engine, store, rows("a", "b"), "resent.csv")
    assert again.is_duplicate
    assert q(engine, "SELECT id, carrier_call_id, loaded_at FROM calls ORDER BY id") == before


def test_a_crash_midway_leaves_the_warehouse_unchanged_and_the_file_rerunnable(engine, store, acme, monkeypatch):
    import cdrflow.loading.payloads as loader

    reg = register(engine, store, rows(*[f"c{i}" for i in range(30)]))
    real = loader.copy_payload
    calls = {"n": 0}

    def crash_on_second(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 2:
            raise RuntimeError("worker killed")
        return real(*args, **kwargs)

    monkeypatch.setattr(loader, "copy_payload", crash_on_second)
    monkeypatch.setattr(arrow_text, "BLOCK_BYTES", 1024)
    with pytest.raises(RuntimeError, match="worker killed"):
        load_file(engine, store, reg.file_id)
    assert q(engine, "SELECT count(*) FROM calls")[0][0] == 0
    assert q(engine, "SELECT status, revision_number FROM cdr_files WHERE id = :i", i=reg.file_id)[0] == ("received", 1)
    monkeypatch.setattr(loader, "copy_payload", real)
    assert load_file(engine, store, reg.file_id).loaded == 30


def test_too_many_bad_rows_fail_the_whole_file_and_keep_them_in_quarantine(engine, store, acme):
    good = rows(*[f"g{i}" for i in range(18)])
    bad = (
        b'"acct1","+1555","+44"\n' + ROW.format(uid="x").replace("2026-11-01 09:00:00", "2026-13-01 09:00:00").encode()
    )
    reg = register(engine, store, good + bad)
    result = load_file(engine, store, reg.file_id)
    assert result.status == "failed" and result.loaded == 0 and result.rejected == 2
    assert q(engine, "SELECT count(*) FROM calls")[0][0] == 0
    quarantined = q(engine, "SELECT line_number, raw_text, reasons FROM rejected_rows ORDER BY line_number")
    assert [(r.line_number, r.reasons) for r in quarantined] == [
        (19, ["parse:column_count:expected 18, got 3"]),
        (20, ["parse:start_time:unparseable '2026-13-01 09:00:00'"]),
    ]
    assert quarantined[0].raw_text == '"acct1","+1555","+44"'
    (log_text,) = q(engine, "SELECT processing_log FROM cdr_files WHERE id = :i", i=reg.file_id)[0]
    assert "2 of 20 lines rejected (10.0% > threshold 5%); nothing loaded" in log_text
    assert "line 19: ['parse:column_count:expected 18, got 3']" in log_text

    # the operator accepts this carrier's quality and re-runs the file
    add_carrier(engine, "acme", file_type="asterisk_csv", reject_threshold=0.2, config={"timezone": "America/New_York"})
    again = load_file(engine, store, reg.file_id)
    assert (again.status, again.loaded, again.rejected) == ("loaded", 18, 2)
    assert q(engine, "SELECT count(*) FROM rejected_rows")[0][0] == 2  # not twice


@pytest.mark.parametrize(
    "data, reason",
    [
        (b"", "empty file"),
        (bytes(range(256)) * 8, "binary data"),
        (b'[{"call_id": "x"}]\n', "this is JSON"),
        (b"just some words\nand more words\n", "not an Asterisk Master.csv"),
    ],
)
def test_unusable_files_are_rejected_with_a_reason_and_kept(engine, store, acme, data, reason):
    reg = register(engine, store, data, "bad.csv")
    result = load_file(engine, store, reg.file_id)
    assert result.status == "rejected" and reason in result.message
    (f,) = q(engine, "SELECT status, processing_log, file_size FROM cdr_files WHERE id = :i", i=reg.file_id)
    assert f.status == "rejected" and reason in f.processing_log and f.file_size == len(data)
    with store.open(register(engine, store, data, "again.csv").file_path.rsplit("/raw/", 1)[1]) as blob:
        assert blob.read() == data  # the bytes are kept


def test_odd_but_valid_lines_load_a_latin1_line_loads_flagged_and_nul_bytes_are_quarantined(engine, store, acme):
    crlf = ROW.format(uid="crlf").replace("\n", "\r\n").encode()
    quoted = ROW.format(uid="q").replace('"Dial"', '"Dial, then ""Hangup"""').encode()
    latin = ROW.format(uid="lat").replace("DOCUMENTATION", "DOC\u00c9").encode("latin-1")  # not UTF-8
    nul = ROW.format(uid="nul").replace("DOCUMENTATION", "DOC\x00").encode()
    truncated = ROW.format(uid="t")[:60].encode()  # a last line cut short, no newline
    reg = register(engine, store, b"\xef\xbb\xbf" + crlf + quoted + latin + nul + truncated)
    with engine.begin() as conn:
        conn.execute(text("UPDATE carriers SET reject_threshold = 0.5"))
    result = load_file(engine, store, reg.file_id)
    assert (result.status, result.loaded, result.rejected) == ("loaded", 3, 2)
    by_id = {r.carrier_call_id: r for r in q(engine, "SELECT carrier_call_id, extras, quality FROM calls")}
    assert set(by_id) == {"crlf", "q", "lat"} and by_id["q"].extras["lastapp"] == 'Dial, then "Hangup"'
    # the Latin-1 line loads as the text its bytes are in Latin-1, flagged with where it went wrong
    at = latin.index(b"\xc9") + 1
    assert by_id["lat"].extras["amaflags"] == "DOC\u00c9"
    assert by_id["lat"].quality == [f"parse:encoding:not valid utf-8 (byte 0xc9 at {at}), read as latin-1"]
    assert by_id["q"].quality is None
    log = q(engine, "SELECT processing_log FROM cdr_files WHERE id = :id", id=reg.file_id)[0][0]
    assert "records: 5 read = 2 loaded + 1 flagged + 2 rejected + 0 repeats" in log
    assert "parse:encoding (flag) 1" in log and "parse:nul_bytes (reject) 1" in log
    bad = {r.line_number: r for r in q(engine, "SELECT line_number, raw_text, raw_bytes, reasons FROM rejected_rows")}
    assert bytes(bad[4].raw_bytes) == nul.rstrip(b"\n")  # every byte kept, exactly
    assert bad[4].reasons == ["parse:nul_bytes:1 NUL byte(s) in the line"]
    assert bad[5].reasons[0].startswith("parse:column_count")


# A quoted value with line breaks in it: Asterisk's cdr_csv quotes every value and writes it as it
# is, so a userfield set from a multi-line variable spans lines; CSV (RFC 4180) allows it.
SPANNING = ROW.format(uid="span").replace(
    '"{uid}",""'.format(uid="span"), '"span","note: first line\r\n\nthird, ""quoted"" line"'
)


def _parsed(data: bytes) -> tuple[dict[int, str], dict[int, dict], list]:
    """Parse an Asterisk file alone: call id by line, extras by call id, and the problems."""
    import json

    from cdrflow.formats import get_parser
    from cdrflow.formats.base import ParseOptions

    ids: dict[int, str] = {}
    extras: dict[str, dict] = {}
    problems = []
    for chunk in get_parser("asterisk_csv").parse(io.BytesIO(data), ParseOptions()):
        for n, cid, ex in zip(chunk.calls["line_number"], chunk.calls["carrier_call_id"], chunk.calls["extras"]):
            ids[int(n)] = cid
            extras[cid] = json.loads(ex)
        problems += chunk.problems
    return ids, extras, problems


def test_a_quoted_value_spanning_lines_is_one_record_wherever_the_blocks_are_cut(monkeypatch):
    files = {  # the record amid others, and first and last in its file
        "amid": (
            rows("a", "b", "c") + SPANNING.encode() + rows("d", "e"),
            {1: "a", 2: "b", 3: "c", 4: "span", 7: "d", 8: "e"},
        ),
        "ends": (
            SPANNING.encode() + rows("d") + SPANNING.replace("span", "last").encode(),
            {1: "span", 4: "d", 5: "last"},
        ),
    }
    # blocks of one line to a few: the record is cut after each of its lines by some of them
    for block_bytes in [None, *range(200, 1400, 16)]:
        monkeypatch.setattr(arrow_text, "BLOCK_BYTES", block_bytes or 8 << 20)
        for name, (data, want) in files.items():
            ids, extras, problems = _parsed(data)
            # every record under the number of its first line; the lines after it keep theirs
            assert (ids, problems) == (want, []), (name, block_bytes)
            assert extras["span"]["userfield"] == 'note: first line\n\nthird, "quoted" line', (name, block_bytes)


@pytest.mark.parametrize("block_bytes", [None, 700])
def test_a_quote_that_never_closes_takes_no_other_record_with_it(monkeypatch, block_bytes):
    if block_bytes:
        monkeypatch.setattr(arrow_text, "BLOCK_BYTES", block_bytes)
    opened = ROW.format(uid="open").replace('"open",""', '"open","never closed').encode()
    ids, _, problems = _parsed(rows("a") + opened + rows(*[f"r{i}" for i in range(60)]))
    # read as one record, the line would swallow the fifty after it: it stands alone (read as it
    # is, or refused), and every record after it is read under its own line number
    assert {n: i for n, i in ids.items() if n != 2} == {1: "a", **{3 + i: f"r{i}" for i in range(60)}}
    assert (ids.get(2), [p.line_number for p in problems]) in [("open", []), (None, [2])]


def test_a_record_spanning_lines_loads_whole_and_counts_once(engine, store, acme):
    reg = register(engine, store, rows("a") + SPANNING.encode() + rows("b"))
    result = load_file(engine, store, reg.file_id)
    assert (result.status, result.lines, result.loaded, result.rejected) == ("loaded", 3, 3, 0)
    loaded = {r.carrier_call_id: r for r in q(engine, "SELECT carrier_call_id, line_number, extras FROM calls")}
    assert {k: r.line_number for k, r in loaded.items()} == {"a": 1, "span": 2, "b": 5}
    assert loaded["span"].extras["userfield"] == 'note: first line\n\nthird, "quoted" line'
    log = q(engine, "SELECT processing_log FROM cdr_files WHERE id = :id", id=reg.file_id)[0][0]
    assert "records: 3 read = 3 loaded + 0 flagged + 0 rejected + 0 repeats" in log


def _zip(members: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    return buffer.getvalue()


def test_a_zip_is_unpacked_into_files_of_their_own(engine, store, acme):
    archive = _zip({"day1/a.csv": rows("z1", "z2"), "../../etc/b.csv": rows("z3")})
    reg = register(engine, store, archive, "cdrs.zip")
    assert process_file(engine, store, reg.file_id).status == "loaded"
    files = q(engine, "SELECT id, file_name, status, parent_id, calls_loaded FROM cdr_files ORDER BY id")
    assert [(f.file_name, f.status, f.parent_id, f.calls_loaded) for f in files] == [
        ("cdrs.zip", "loaded", None, None),
        ("a.csv", "loaded", reg.file_id, 2),
        ("b.csv", "loaded", reg.file_id, 1),
    ]
    (log_text,) = q(engine, "SELECT processing_log FROM cdr_files WHERE id = :i", i=reg.file_id)[0]
    assert "member name '../../etc/b.csv' is not a plain file name" in log_text
    # the same member arriving later on its own is a duplicate of the unpacked one
    assert register(engine, store, rows("z3"), "b.csv").duplicate_of == files[2].id


def test_a_gzip_file_is_unpacked_and_loaded(engine, store, acme):
    reg = register(engine, store, gzip.compress(rows("g1", "g2")), "Master.csv.gz")
    process_file(engine, store, reg.file_id)
    assert q(engine, "SELECT file_name, status FROM cdr_files WHERE parent_id = :i", i=reg.file_id) == [
        ("Master.csv", "loaded")
    ]
    assert q(engine, "SELECT count(*) FROM calls")[0][0] == 2


def test_a_zip_bomb_is_rejected_before_anything_is_written(engine, store, acme, tmp_path):
    bomb = _zip({"huge.csv": b"0" * (50 << 20)})  # 50 MB of zeros deflate to ~50 KB (ratio ~1000)
    reg = register(engine, store, bomb, "bomb.zip")
    result = process_file(engine, store, reg.file_id)
    assert result.status == "rejected" and "decompression bomb" in result.message
    assert q(engine, "SELECT count(*) FROM cdr_files WHERE parent_id = :i", i=reg.file_id)[0][0] == 0
    (f,) = q(engine, "SELECT status, processing_log FROM cdr_files WHERE id = :i", i=reg.file_id)
    assert f.status == "rejected" and "decompression bomb" in f.processing_log
    assert not list((tmp_path / "raw" / "tmp").glob("*"))  # no partial member left behind


def test_rows_failing_expectations_are_quarantined_by_name_and_summarised_in_the_log(engine, store, acme):
    good = rows(*[f"v{i}" for i in range(38)])
    negative = ROW.format(uid="neg").replace('"65","60"', '"-5","0"')
    billed_too_long = ROW.format(uid="long").replace('"65","60"', '"65","70"')
    reg = register(engine, store, good + (negative + billed_too_long).encode())
    result = load_file(engine, store, reg.file_id)
    assert (result.status, result.loaded, result.rejected) == ("loaded", 38, 2)
    quarantined = {r.line_number: r.reasons for r in q(engine, "SELECT line_number, reasons FROM rejected_rows")}
    assert quarantined == {
        39: [
            "expect_column_values_to_be_between(duration_seconds)",
            "expect_column_values_to_be_between(ringing_seconds)",
            "expect_column_pair_values_a_to_be_greater_than_b(duration_seconds,billing_seconds)",
        ],
        40: [
            "expect_column_values_to_be_between(ringing_seconds)",
            "expect_column_pair_values_a_to_be_greater_than_b(duration_seconds,billing_seconds)",
        ],
    }
    (log_text,) = q(engine, "SELECT processing_log FROM cdr_files WHERE id = :i", i=reg.file_id)[0]
    assert "expect_column_values_to_be_between(duration_seconds): FAILED for 1 row(s)" in log_text
    assert "expect_column_values_to_not_be_null(carrier_call_id): ok" in log_text


def test_a_header_only_report_loads_nothing_and_says_so(engine, store):
    add_carrier(engine, "tel", file_type="telnyx_csv")
    reg = register(engine, store, b"Call Leg ID,Start Time,CLI,CLD\r\n", "report.csv", carrier="tel")
    result = load_file(engine, store, reg.file_id)
    assert (result.status, result.lines, result.loaded) == ("loaded", 0, 0)
    (f,) = q(engine, "SELECT status, processing_log FROM cdr_files WHERE id = :i", i=reg.file_id)
    assert f.status == "loaded" and "0 lines: 0 calls loaded" in f.processing_log


def test_files_sharing_calls_loading_at_the_same_moment_still_hold_each_call_once(engine, store, acme):
    import threading

    from sqlalchemy import create_engine

    first = register(engine, store, rows("u1", "u2", "u3", "u4"), "a.csv")
    second = register(engine, store, rows("u3", "u4", "u5"), "b.csv")
    holder = create_engine(engine.url)
    with holder.connect() as conn:  # a third transaction holds u3's key: both loads must wait
        trans = conn.begin()
        conn.execute(text("SET LOCAL TimeZone = 'UTC'"))
        conn.execute(text("SELECT cdrflow_ensure_calls_partition('2026-11-01 14:00:00+00')"))
        conn.execute(
            text(
                "INSERT INTO calls (carrier, carrier_call_id, record_key, start_time, file_id, line_number) "
                "VALUES ('acme', 'u3', :key, '2026-11-01 14:00:00+00', :f, 1)"
            ),
            {"f": first.file_id, "key": "u3|SIP/b-1|Dial|SIP/b,60|ANSWERED|65|60"},  # an 18-column line's key
        )
        results = {}
        threads = [
            threading.Thread(target=lambda f=f: results.setdefault(f.file_id, load_file(engine, store, f.file_id)))
            for f in (first, second)
        ]
        for t in threads:
            t.start()
        threads[0].join(1.0)
        assert all(t.is_alive() for t in threads)  # both wait on the key the third one holds
        trans.rollback()  # ...which goes away: u3 is theirs to load, once
        for t in threads:
            t.join(60)
    holder.dispose()
    a, b = results[first.file_id], results[second.file_id]
    assert (a.status, b.status) == ("loaded", "loaded")
    assert a.loaded + b.loaded == 5 and a.duplicates + b.duplicates == 2  # u3 and u4 once each
    assert [r[0] for r in q(engine, "SELECT carrier_call_id FROM calls ORDER BY 1")] == ["u1", "u2", "u3", "u4", "u5"]
    assert q(engine, "SELECT calls FROM call_days")[0][0] == 5


def test_a_batch_of_small_files_sharing_calls_loads_each_call_once(engine, store, acme):
    from cdrflow.loading.batches import process_batch

    ids = [
        register(engine, store, rows(*(f"c{i * 3 + k}" for k in range(5))), f"f{i}.csv").file_id for i in range(12)
    ]  # each file repeats two calls of the one before
    outcome = process_batch(engine, store, ids)
    assert not outcome.errors and {r.status for r in outcome.results} == {"loaded"}
    assert sum(r.loaded for r in outcome.results) == 12 * 3 + 2
    assert sum(r.duplicates for r in outcome.results) == 11 * 2
    assert q(engine, "SELECT count(*), count(DISTINCT carrier_call_id) FROM calls")[0] == (38, 38)


def test_a_small_zip_in_a_processing_batch_is_unpacked_and_its_members_loaded(engine, store, acme):
    from cdrflow.loading.batches import process_batch

    archive = register(engine, store, _zip({"a.csv": rows("y1", "y2"), "b.csv": rows("y3")}), "day.zip")
    plain = register(engine, store, rows("y4"), "plain.csv")
    outcome = process_batch(engine, store, [archive.file_id, plain.file_id])
    assert not outcome.errors
    files = q(engine, "SELECT file_name, status, calls_loaded FROM cdr_files ORDER BY id")
    assert [tuple(f) for f in files] == [
        ("day.zip", "loaded", None),
        ("plain.csv", "loaded", 1),
        ("a.csv", "loaded", 2),
        ("b.csv", "loaded", 1),
    ]
    assert q(engine, "SELECT count(*) FROM calls")[0][0] == 4
