"""Rate decks dropped into a folder or bucket, imported by the ``cdrflow_import_decks`` DAG
(``dag.test()``, tasks in-process) against the test warehouse: each deck once, a bad deck
refused with its line numbers and kept with its reasons, a CGRateS tariff plan folder imported
once complete, the effective date from the name; and the same through moto's S3 server."""

from __future__ import annotations

import io
import logging
import zipfile
from datetime import date
from pathlib import Path

import pytest
from sqlalchemy import text
from tests.airflow_runs import airflow_db, dagbag, pipeline

from cdrflow.billing import deck_drop
from cdrflow.billing.deck_drop_names import DropRefused, manual_path, parse, with_sha
from cdrflow.config.errors import CdrflowError
from servers.s3 import s3_server

SAMPLES = Path(__file__).resolve().parents[2] / "shared" / "samples"
CGRATES = SAMPLES / "cgrates" / "tariffplan_tutorial"
DAG_ID = "cdrflow_import_decks"
HEADER = (
    "prefix,destination,call_type,call_sub_type,rate_per_minute,connect_fee,"
    "first_increment,next_increment,minimum_seconds,minimum_charge\n"
)
NOVEMBER = HEADER + "44,United Kingdom,I,,0.0100,0,60,60,0,0\n33,France,I,,0.0200,0,60,60,0,0\n"
DECEMBER = (
    HEADER
    + "44,United Kingdom,I,,0.0150,0,60,60,0,0\n33,France,I,,0.0200,0,60,60,0,0\n49,Germany,I,,0.03,0,60,60,0,0\n"
)
BAD = HEADER + "44,United Kingdom,I,,0.0100,0,60,60,0,0\n33,France,I,,-0.02,0,60,60,0,0\n"


@pytest.fixture
def inbox(pipeline, engine, tmp_path, monkeypatch) -> Path:
    folder = tmp_path / "decks-inbox"
    monkeypatch.setenv("CDRFLOW_DECK_DROP", str(folder))
    yield folder
    with engine.begin() as conn:
        conn.execute(text("TRUNCATE deck_drops, rate_decks, rate_deck_versions, rates RESTART IDENTITY CASCADE"))


def drop(folder: Path, name: str, body: str | bytes) -> Path:
    path = folder / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(body.encode() if isinstance(body, str) else body)
    return path


def q(engine, sql: str) -> list[tuple]:
    with engine.connect() as conn:
        return [tuple(r) for r in conn.execute(text(sql))]


def run(pipeline, path: str | None = None):
    return pipeline.run(DAG_ID, {"path": path})  # every param spelled out (the DAG object is reused)


def files(folder: Path) -> list[str]:
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file())


def test_a_csv_deck_is_imported_once_with_its_date_and_changes(pipeline, inbox, engine):
    drop(inbox, "retail/2026-11-01__november.EUR.csv", NOVEMBER)
    first = run(pipeline)
    assert first.state == "success", first.tasks
    (result,) = first.xcom("import_decks")[0]
    assert result["outcome"] == "imported"
    assert result["versions"] == [
        {
            "deck": "retail",
            "version": 1,
            "rates": 2,
            "effective_from": "2026-11-01",
            "changes": "2 added, 0 removed, 0 price up, 0 price down, 0 other change(s), 0 unchanged",
        }
    ]
    assert q(engine, "SELECT name, currency, kind FROM rate_decks") == [("retail", "EUR", "sell")]
    assert files(inbox) == ["processed/retail/2026-11-01__november.EUR.csv"]

    again = run(pipeline)  # nothing waiting: nothing changes
    assert again.state == "success" and again.xcom("import_decks") == [[]]
    # the same bytes dropped again: a duplicate, kept beside the first under its SHA1
    drop(inbox, "retail/2026-11-01__november.EUR.csv", NOVEMBER)
    dup = run(pipeline)
    (result,) = dup.xcom("import_decks")[0]
    assert (result["outcome"], result["message"]) == ("duplicate", "duplicate of drop 1")
    assert q(engine, "SELECT deck, version, effective_from FROM rate_deck_versions") == [
        ("retail", 1, date(2026, 11, 1))
    ]
    sha = result["sha1"]
    assert files(inbox) == sorted(
        [
            "processed/retail/2026-11-01__november.EUR.csv",
            f"processed/retail/2026-11-01__november.EUR.{sha[:12]}.csv",
        ]
    )

    # a new price list from December: the next version, and what changed
    drop(inbox, "retail/2026-12-01__december.csv", DECEMBER)
    dec = run(pipeline)
    (result,) = dec.xcom("import_decks")[0]
    assert result["versions"][0]["version"] == 2
    assert result["versions"][0]["changes"].startswith("1 added, 0 removed, 1 price up, 0 price down")
    assert q(engine, "SELECT version, effective_from, rates FROM rate_deck_versions ORDER BY version") == [
        (1, date(2026, 11, 1), 2),
        (2, date(2026, 12, 1), 3),
    ]
    assert q(engine, "SELECT outcome, kept_as FROM deck_drops ORDER BY id") == [
        ("imported", "processed/retail/2026-11-01__november.EUR.csv"),
        ("duplicate", f"processed/retail/2026-11-01__november.EUR.{sha[:12]}.csv"),
        ("imported", "processed/retail/2026-12-01__december.csv"),
    ]


def test_a_bad_deck_is_refused_with_its_line_and_kept_while_the_others_import(pipeline, inbox, engine, caplog):
    drop(inbox, "wholesale/2026-11-01__bad.csv", BAD)
    drop(inbox, "retail/2026-11-01__good.csv", NOVEMBER)
    drop(inbox, "stray.csv", NOVEMBER)  # no deck folder
    drop(inbox, "retail/november.csv", NOVEMBER)  # no date
    caplog.set_level(logging.INFO, logger="cdrflow.billing.deck_drop")

    out = run(pipeline)

    assert out.state == "failed"  # red in the UI: a deck was refused
    assert out.tasks == {"import_decks": ["success"], "check": ["failed"]}
    outcomes = {r["name"]: r["outcome"] for r in out.xcom("import_decks")[0]}
    assert outcomes == {
        "retail/2026-11-01__good.csv": "imported",
        "retail/november.csv": "refused",
        "stray.csv": "refused",
        "wholesale/2026-11-01__bad.csv": "refused",
    }
    assert q(engine, "SELECT deck, version FROM rate_deck_versions") == [("retail", 1)]
    assert files(inbox) == [
        "processed/retail/2026-11-01__good.csv",
        "rejected/retail/november.csv",
        "rejected/retail/november.csv.error.txt",
        "rejected/stray.csv",
        "rejected/stray.csv.error.txt",
        "rejected/wholesale/2026-11-01__bad.csv",
        "rejected/wholesale/2026-11-01__bad.csv.error.txt",
    ]
    assert (inbox / "rejected/wholesale/2026-11-01__bad.csv").read_text() == BAD  # kept byte for byte
    why = (inbox / "rejected/wholesale/2026-11-01__bad.csv.error.txt").read_text().splitlines()
    assert why[0].startswith("wholesale/2026-11-01__bad.csv: refused, nothing imported (drop ")
    assert why[1:] == ["2026-11-01__bad.csv line 3: rate_per_minute -0.02 is negative"]
    assert "YYYY-MM-DD__" in (inbox / "rejected/retail/november.csv.error.txt").read_text()
    assert "folder named after its deck" in (inbox / "rejected/stray.csv.error.txt").read_text()
    (problems,) = q(engine, "SELECT problems FROM deck_drops WHERE name = 'wholesale/2026-11-01__bad.csv'")
    assert problems == (["2026-11-01__bad.csv line 3: rate_per_minute -0.02 is negative"],)
    errors = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
    assert "  2026-11-01__bad.csv line 3: rate_per_minute -0.02 is negative" in errors

    # fixed and dropped again: imported (a new name, other bytes)
    drop(inbox, "wholesale/2026-11-01__bad.csv", BAD.replace("-0.02", "0.02"))
    assert run(pipeline).state == "success"
    assert q(engine, "SELECT deck, version FROM rate_deck_versions ORDER BY deck") == [("retail", 1), ("wholesale", 1)]


def test_a_cgrates_folder_is_imported_once_complete(pipeline, inbox, engine):
    plan = inbox / "2026-11-01__tutorial.cgrates"
    plan.mkdir(parents=True)
    for f in CGRATES.iterdir():
        (plan / f.name).write_bytes(f.read_bytes())

    waiting = run(pipeline)  # no .ready yet: still being copied, as far as the DAG knows
    assert waiting.state == "success"
    assert [r["outcome"] for r in waiting.xcom("import_decks")[0]] == ["waiting"]
    assert q(engine, "SELECT count(*) FROM rate_deck_versions") == [(0,)]

    (plan / ".ready").touch()
    done = run(pipeline)
    assert done.state == "success", done.tasks
    (result,) = done.xcom("import_decks")[0]
    assert [(v["deck"], v["version"], v["effective_from"]) for v in result["versions"]] == [
        ("RP_1001", 1, "2026-11-01"),
        ("RP_1002", 1, "2026-11-01"),
        ("RP_1002_LOW", 1, "2026-11-01"),
        ("RP_1003", 1, "2026-11-01"),
    ]
    assert q(engine, "SELECT DISTINCT source FROM rate_deck_versions") == [
        (f"2026-11-01__tutorial.cgrates (cgrates, drop {result['sha1'][:12]})",)
    ]
    assert not plan.exists()
    kept = sorted(p.name for p in (inbox / "processed" / plan.name).iterdir())
    assert kept == sorted([".ready", *(f.name for f in CGRATES.iterdir())])

    # the same plan under a deck folder, by a manual run (no .ready needed): that plan only
    only = inbox / "RP_1003" / "2026-12-01__tutorial.cgrates"
    only.mkdir(parents=True)
    for f in CGRATES.iterdir():
        (only / f.name).write_bytes(f.read_bytes())
    manual = run(pipeline, "RP_1003/2026-12-01__tutorial.cgrates")
    assert manual.state == "success", manual.tasks
    assert q(engine, "SELECT deck, version, effective_from FROM rate_deck_versions WHERE version = 2") == [
        ("RP_1003", 2, date(2026, 12, 1))
    ]
    assert run(pipeline, "../elsewhere").state == "failed"  # a form cannot reach outside the drop


def _zip(folder: Path, inside: str) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for f in sorted(folder.iterdir()):
            zf.write(f, f"{inside}/{f.name}")
    return buf.getvalue()


def test_drops_in_an_s3_bucket(pipeline, inbox, engine, s3_server, monkeypatch):
    bucket = s3_server.create_bucket()
    monkeypatch.setenv("AIRFLOW_CONN_DECKS_S3", s3_server.airflow_conn_json())
    monkeypatch.setenv("CDRFLOW_DECK_DROP", f"s3://decks_s3@{bucket}/decks/")
    s3_server.put(bucket, "decks/retail/2026-11-01__november.csv", NOVEMBER.encode())
    s3_server.put(bucket, "decks/RP_1002_LOW/2026-11-01__plan.cgrates.zip", _zip(CGRATES, "tariffplan"))
    s3_server.put(bucket, "decks/wholesale/2026-11-01__bad.csv", BAD.encode())
    s3_server.put(bucket, "decks/retail/2026-12-01__upload.csv.part", b"still uploading")

    out = run(pipeline)

    assert out.tasks["import_decks"] == ["success"]
    outcomes = {r["name"]: r["outcome"] for r in out.xcom("import_decks")[0]}
    assert outcomes == {
        "RP_1002_LOW/2026-11-01__plan.cgrates.zip": "imported",
        "retail/2026-11-01__november.csv": "imported",
        "wholesale/2026-11-01__bad.csv": "refused",
    }
    assert q(engine, "SELECT deck, version, rates FROM rate_deck_versions ORDER BY deck") == [
        ("RP_1002_LOW", 1, 1),
        ("retail", 1, 2),
    ]
    assert s3_server.keys(bucket) == [
        "decks/processed/RP_1002_LOW/2026-11-01__plan.cgrates.zip",
        "decks/processed/retail/2026-11-01__november.csv",
        "decks/rejected/wholesale/2026-11-01__bad.csv",
        "decks/rejected/wholesale/2026-11-01__bad.csv.error.txt",
        "decks/retail/2026-12-01__upload.csv.part",
    ]
    why = s3_server.get(bucket, "decks/rejected/wholesale/2026-11-01__bad.csv.error.txt").decode()
    assert "2026-11-01__bad.csv line 3: rate_per_minute -0.02 is negative" in why
    assert q(engine, "SELECT DISTINCT drop_url FROM deck_drops") == [(f"s3://{bucket}/decks",)]


def test_the_naming_convention():
    spec = parse("retail/2026-11-01__carrier-x.v2.buy.EUR.csv", is_dir=False)
    assert (spec.deck, spec.format, spec.shape, spec.effective_from, spec.kind, spec.currency) == (
        "retail",
        "cdrflow",
        "file",
        date(2026, 11, 1),
        "buy",
        "EUR",
    )
    assert parse("2026-11-01.cgrates.zip", is_dir=False).target == ""  # every rating plan
    assert parse("x/2026-11-01__t.CDRTOOL", is_dir=True).format == "cdrtool"
    refused = {
        ("retail/2026-13-01__x.csv", False): "2026-13-01 is not a date",
        ("retail/x.csv", False): "must start with the first day in force",
        ("retail/2026-11-01__x.xlsx", False): "without a deck suffix",
        ("retail/2026-11-01__x.cgrates", False): "is a folder",
        ("retail/2026-11-01__x.csv", True): "a folder named like a file",
        ("2026-11-01__x.cdrtool", True): "belongs in a folder named after its deck",
        ("a/b/2026-11-01__x.csv", False): "too deep",
    }
    for (name, is_dir), message in refused.items():
        with pytest.raises(DropRefused, match=message):
            parse(name, is_dir)
    assert with_sha("2026-11-01__x.cgrates.zip", "ab" * 20) == "2026-11-01__x.abababababab.cgrates.zip"
    assert manual_path(" retail/2026-11-01__x.cgrates/ ") == "retail/2026-11-01__x.cgrates"
    for bad in ("../x", "retail/../../etc", "/etc/passwd", "processed/retail/x.csv", ""):
        with pytest.raises(CdrflowError):
            manual_path(bad)


def test_a_bad_zip_is_refused_and_kept(engine, tmp_path, inbox):
    drop(inbox, "2026-11-01__plan.cgrates.zip", b"not a zip at all")
    evil = io.BytesIO()
    with zipfile.ZipFile(evil, "w") as zf:
        zf.writestr("../../escape.csv", "x")
    drop(inbox, "RP_1001/2026-11-01__evil.cgrates.zip", evil.getvalue())
    results = deck_drop.run(engine, str(inbox))
    assert [(r.name, r.outcome) for r in results] == [
        ("2026-11-01__plan.cgrates.zip", "refused"),
        ("RP_1001/2026-11-01__evil.cgrates.zip", "refused"),
    ]
    assert "not a readable zip file" in results[0].problems[0]
    assert "points outside the zip" in results[1].problems[0]
    assert not (tmp_path / "escape.csv").exists()
    assert files(inbox)[0] == "rejected/2026-11-01__plan.cgrates.zip"


def test_a_link_out_of_the_drop_is_not_followed_nor_a_deck_folder_taken_whole(engine, tmp_path, inbox):
    secret = drop(tmp_path, "secret.txt", "password=hunter2\n")
    (inbox / "retail").mkdir(parents=True)
    (inbox / "retail" / "2026-11-01__x.csv").symlink_to(secret)
    drop(inbox, "retail/2026-11-01__november.csv", NOVEMBER)
    results = deck_drop.run(engine, str(inbox))
    assert [(r.name, r.outcome) for r in results] == [("retail/2026-11-01__november.csv", "imported")]
    assert (inbox / "retail" / "2026-11-01__x.csv").is_symlink()  # left where it is, never read
    assert q(engine, "SELECT count(*) FROM deck_drops") == [(1,)]
    with pytest.raises(CdrflowError, match="symbolic link"):
        deck_drop.run(engine, str(inbox), "retail/2026-11-01__x.csv")
    drop(inbox, "retail/2026-12-01__december.csv", DECEMBER)
    with pytest.raises(CdrflowError, match="a folder of drops, not a drop"):
        deck_drop.run(engine, str(inbox), "retail")
    assert (inbox / "retail" / "2026-12-01__december.csv").exists()


def test_cdrtool_tables_zipped_flat(engine, inbox):
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        for name in ("destinations.csv", "rates.csv"):
            zf.write(SAMPLES / "cdrtool-rating-csv" / name, name)  # no top folder in the zip
    drop(inbox, "grn/2026-11-01__tables.EUR.cdrtool.zip", buf.getvalue())
    (result,) = deck_drop.run(engine, str(inbox))
    assert (result.outcome, result.versions[0]["rates"], result.versions[0]["effective_from"]) == (
        "imported",
        13126,
        "2026-11-01",
    )
    assert q(engine, "SELECT name, currency FROM rate_decks") == [("grn", "EUR")]
    assert files(inbox) == ["processed/grn/2026-11-01__tables.EUR.cdrtool.zip"]
