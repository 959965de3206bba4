"""One rule for file names from outside (intake/names.py), applied wherever a file enters:
zip members, mail attachments, any caller of register_file."""

from __future__ import annotations

import io
import zipfile

import pytest
from sqlalchemy import text

from cdrflow.intake import archives
from cdrflow.intake.names import MAX_LENGTH, clean_name
from cdrflow.intake.registry import register_file

CSV = b'"acct001","+15551234567","+442071234567","from-trunk"\n'


@pytest.mark.parametrize(
    ("raw", "clean"),
    [
        ("Master.csv", "Master.csv"),
        ("../../etc/passwd", "passwd"),
        ("C:\\carrier\\out\\day 1.csv", "day 1.csv"),
        ("Master\n1.csv", "Master_1.csv"),
        ("a\r\nb.csv", "a__b.csv"),
        ("Master\x1b[2J\u2028day\x85 1.csv", "Master_[2J_day_ 1.csv"),  # ESC, LINE SEPARATOR, NEL
        ("evil\u202etxt.exe", "evil_txt.exe"),  # a right-to-left override
        ("bad\udcff.csv", "bad_.csv"),  # an undecodable byte of a local name
        ("  spaced.csv \t", "spaced.csv"),
        ("", "unnamed"),
        ("..", "unnamed"),
        ("dir/", "unnamed"),
        ("\n\t", "unnamed"),
    ],
)
def test_clean_name(raw, clean):
    assert clean_name(raw) == clean
    assert clean_name(clean) == clean  # stable


def test_a_long_name_is_bounded_and_keeps_its_extension():
    name = clean_name("x" * 1000 + ".csv")
    assert len(name) == MAX_LENGTH and name.endswith("x.csv")


def _files(engine) -> list[str]:
    with engine.connect() as conn:
        return list(conn.execute(text("SELECT file_name FROM cdr_files ORDER BY id")).scalars())


def test_register_file_records_the_clean_name(engine, store, carrier):
    reg = register_file(
        engine, store, io.BytesIO(CSV), file_name="cdr\n2026-11-01\x00.csv", carrier=carrier, file_source="api"
    )
    assert reg.file_name == "cdr_2026-11-01_.csv"
    assert _files(engine) == ["cdr_2026-11-01_.csv"]


def test_zip_member_names_with_newlines_become_clean_file_names(engine, store, carrier):
    packed = io.BytesIO()
    with zipfile.ZipFile(packed, "w") as zf:
        zf.writestr("day1\nMaster.csv", CSV)
        zf.writestr("../x/\x1b[31mred.csv", CSV * 2)
        zf.writestr("sub/\u2028", CSV * 3)  # nothing printable: the member's number
    archive = register_file(
        engine, store, io.BytesIO(packed.getvalue()), file_name="cdrs.zip", carrier=carrier, file_source="upload"
    )

    members = archives.unpack(engine, store, archive.file_id)

    assert [m.file_name for m in members] == ["day1_Master.csv", "_[31mred.csv", "member-3"]
    assert _files(engine) == ["cdrs.zip", "day1_Master.csv", "_[31mred.csv", "member-3"]
    assert all(name.isprintable() for name in _files(engine))
