"""Seed 000, the CDR Files API, over HTTP against the uvicorn process: the seed's test vectors,
every filter's bad values (400, never 500), the 23 fields and their mapped values, who sees what,
and uploads (stored bytes, duplicates, refusals, archives)."""

from __future__ import annotations

import hashlib
import io
import os
import zipfile
from pathlib import Path

import httpx
import pytest
from sqlalchemy import Engine, text
from tests.api.conftest import auth
from tests.conftest import add_carrier

from cdrflow.config import carrier_file
from cdrflow.intake import archives
from cdrflow.intake.rawstore import RawStore
from cdrflow.intake.registry import MailFields, register_file, set_status
from cdrflow.warehouse import carriers

pytestmark = pytest.mark.integration

LIST = "/backend/api/v1/CDRFiles/"
SHA1_EMPTY = "da39a3ee5e6b4b0d3255bfef95601890afd80709"
SHA1_ABC = "a9993e364706816aba3e25717850c26c9cd0d89d"
SEED_FIELDS = [
    "fileName",
    "storedFileID",
    "uploadedDate",
    "fileSource",
    "carrier",
    "fileType",
    "billing",
    "daily",
    "billrun",
    "notes",
    "mailMessage",
    "mailFrom",
    "mailTo",
    "mailSubject",
    "status",
    "filePath",
    "originalHash",
    "fileSize",
    "lines",
    "fileProcessedStamp",
    "processingLog",
    "id",
    "revisionNumber",
]


def register(engine: Engine, store: RawStore, data: bytes, carrier: str = "acme", source: str = "upload", **kw) -> int:
    name = kw.pop("file_name", f"f{hashlib.sha1(data).hexdigest()[:6]}.csv")
    r = register_file(engine, store, io.BytesIO(data), file_name=name, carrier=carrier, file_source=source, **kw)
    return r.file_id


def ids(response: httpx.Response) -> list[str]:
    assert response.status_code == 200, response.text
    return [f["id"] for f in response.json()]


@pytest.fixture
def operator(make_token) -> dict[str, str]:
    return auth(make_token(None))


@pytest.fixture
def seven(engine, store, carrier) -> list[int]:
    return [register(engine, store, f"file {n}\n".encode()) for n in range(1, 8)]


def test_id_after_is_strict_and_ascending(api: httpx.Client, operator, seven):
    assert seven == [1, 2, 3, 4, 5, 6, 7]
    assert ids(api.get(LIST, headers=operator)) == ["1", "2", "3", "4", "5", "6", "7"]
    assert ids(api.get(LIST, params={"idAfter": 5}, headers=operator)) == ["6", "7"]
    assert ids(api.get(LIST, params={"idAfter": 7}, headers=operator)) == []
    assert ids(api.get(LIST, params={"idAfter": "+0"}, headers=operator)) == ["1", "2", "3", "4", "5", "6", "7"]
    # both spellings answer at once: no 307 to the other one
    bare = api.get(LIST.rstrip("/"), params={"idAfter": 5}, headers=operator)
    assert bare.status_code == 200 and ids(bare) == ["6", "7"]


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("idAfter", "abc"),
        ("idAfter", "1;DROP TABLE cdr_files"),
        ("idAfter", "1 OR 1=1"),
        ("idAfter", "99999999999999999999"),
        ("idAfter", "5" * 10_000),
        ("idAfter", "1.5"),
        ("createdSince", "x" * 10_000),
        ("createdSince", "2024-01-01T00:00:00Z" + "0" * 10_000),
        ("createdSince", "2024-13-01"),
        ("createdSince", "2024-01-01'; DROP TABLE cdr_files; --"),
        ("createdSince", "0001-01-01T00:00:00+14:00"),  # before year 1 in UTC
        ("updatedSince", "yesterday"),
        ("updatedSince", "1) OR (1=1"),
        ("updatedSince", "\x00"),
        ("limit", "0"),
        ("limit", "1001"),
        ("limit", "all"),
    ],
)
def test_bad_filter_values_answer_400(api: httpx.Client, operator, seven, engine, name, value):
    response = api.get(LIST, params={name: value}, headers=operator)
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert error["code"] == 400 and error["message"].startswith(name), error
    assert len(error["message"]) < 300  # a 10,000-character value is not echoed back
    with engine.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM cdr_files")).scalar() == 7


def test_created_since_is_inclusive_at_the_exact_instant(api: httpx.Client, operator, seven, engine):
    stamps = {
        1: "2023-12-31T23:59:59.999999Z",
        2: "2024-01-01T00:00:00Z",
        3: "2024-01-01T00:00:00.000001Z",
        4: "2024-02-01T10:00:00Z",
        5: "2024-02-01T12:00:00Z",
    }
    with engine.begin() as conn:
        for file_id, stamp in stamps.items():
            conn.execute(text("UPDATE cdr_files SET created_at = :t WHERE id = :id"), {"t": stamp, "id": file_id})
        conn.execute(text("UPDATE cdr_files SET created_at = '2023-01-01Z' WHERE id > 5"))
    assert ids(api.get(LIST, params={"createdSince": "2024-01-01T00:00:00Z"}, headers=operator)) == ["2", "3", "4", "5"]
    # a date alone, a time without offset (UTC) and an offset name the same instants
    assert ids(api.get(LIST, params={"createdSince": "2024-01-01"}, headers=operator)) == ["2", "3", "4", "5"]
    assert ids(api.get(LIST, params={"createdSince": "2024-02-01T12:00:00"}, headers=operator)) == ["5"]
    assert ids(api.get(LIST, params={"createdSince": "2024-02-01T13:00:00+01:00"}, headers=operator)) == ["5"]
    # an unencoded '+' reaches the server as a space: still the offset
    raw = api.get(LIST + "?createdSince=2024-02-01T13:00:00+01:00", headers=operator)
    assert ids(raw) == ["5"]
    # the filters are ANDed
    both = {"createdSince": "2024-01-01T00:00:00Z", "idAfter": "3"}
    assert ids(api.get(LIST, params=both, headers=operator)) == ["4", "5"]
    # the created stamp the API shows is the one the filter compares
    third = api.get(LIST + "3", headers=operator).json()
    assert third["created"] == "2024-01-01T00:00:00.000001Z"
    assert ids(api.get(LIST, params={"createdSince": third["created"]}, headers=operator)) == ["3", "4", "5"]


def test_updated_since_takes_a_shown_stamp_inclusively(api: httpx.Client, operator, seven, engine):
    with engine.begin() as conn:
        set_status(conn, 3, "processing", "test")
    with engine.begin() as conn:
        set_status(conn, 6, "processing", "test")
    updated = api.get(LIST + "3", headers=operator).json()["updated"]
    assert ids(api.get(LIST, params={"updatedSince": updated}, headers=operator)) == ["3", "6"]
    assert ids(api.get(LIST, params={"updatedSince": updated, "idAfter": 3}, headers=operator)) == ["6"]


def test_a_full_page_links_to_the_next(api: httpx.Client, operator, seven):
    first = api.get(LIST, params={"limit": 3, "idAfter": 1}, headers=operator)
    assert ids(first) == ["2", "3", "4"]
    assert first.links["next"]["url"].endswith("limit=3&idAfter=4")
    second = api.get(first.links["next"]["url"], headers=operator)
    assert ids(second) == ["5", "6", "7"]
    third = api.get(second.links["next"]["url"], headers=operator)
    assert ids(third) == [] and "link" not in third.headers
    # a token given in the query string is not copied into the link
    by_query = api.get(LIST, params={"limit": 3, "auth_token": operator["X-Auth-Token"]})
    assert "auth_token" not in by_query.links["next"]["url"]


def test_one_file_has_the_23_seed_fields_in_order(api: httpx.Client, operator, engine, store):
    add_carrier(engine, "acme", billable=True, delivery="daily")
    empty = register(engine, store, b"", file_name="empty.csv")
    abc = register(engine, store, b"abc", file_name="../etc/abc.csv", notes="from the portal")
    body = api.get(f"{LIST}{abc}", headers=operator).json()
    assert list(body)[:23] == SEED_FIELDS
    assert list(body)[23:] == ["sourceKind", "duplicateOf", "created", "updated"]
    assert body["fileName"] == "abc.csv" and body["carrier"] == "acme" and body["fileType"] == "asterisk_csv"
    assert body["originalHash"] == SHA1_ABC and body["fileSize"] == "3"
    assert body["storedFileID"] == f"sha1/a9/99/{SHA1_ABC}" and body["filePath"].endswith(body["storedFileID"])
    assert (body["id"], body["revisionNumber"], body["lines"], body["fileProcessedStamp"]) == (
        str(abc),
        "1",
        None,
        None,
    )
    assert (body["fileSource"], body["sourceKind"], body["billing"], body["daily"]) == (
        "Upload",
        "upload",
        "Yes",
        "Daily",
    )
    assert (body["status"], body["duplicateOf"], body["notes"]) == ("Received", None, "from the portal")
    assert body["uploadedDate"].endswith("Z") and "registered 'abc.csv'" in body["processingLog"]
    nothing = api.get(f"{LIST}{empty}", headers=operator).json()
    assert (nothing["originalHash"], nothing["fileSize"]) == (SHA1_EMPTY, "0")
    # processed: lines and the stamp appear, the revision counts the changes
    with engine.begin() as conn:
        set_status(conn, abc, "processing", "parsing")
        set_status(conn, abc, "loaded", "2 calls", lines=2, processed=True)
    body = api.get(f"{LIST}{abc}", headers=operator).json()
    assert (body["status"], body["lines"], body["revisionNumber"]) == ("Processed", "2", "3")
    assert body["fileProcessedStamp"].endswith("Z")


def test_preset_values_are_mapped(api: httpx.Client, operator, engine, store):
    add_carrier(engine, "monthly", delivery="monthly", billable=False)
    mail = MailFields("<m1@example.com>", "cdr@carrier.example", "cdr@us.example", "CDRs for May")
    shown = {}
    for n, source in enumerate(("upload", "api", "bucket", "email", "sftp", "ftp")):
        file_id = register(engine, store, f"{source}\n".encode(), "monthly", source, mail=mail if n == 3 else None)
        body = api.get(f"{LIST}{file_id}", headers=operator).json()
        shown[source] = body["fileSource"]
        assert (body["billing"], body["daily"], body["sourceKind"]) == ("No", "Monthly", source)
    assert shown == {
        "upload": "Upload",
        "api": "Upload",
        "bucket": "Upload",
        "email": "Email",
        "sftp": "FTP",
        "ftp": "FTP",
    }
    body = api.get(f"{LIST}4", headers=operator).json()
    assert [body[k] for k in ("mailMessage", "mailFrom", "mailTo", "mailSubject")] == list(mail.__dict__.values())
    statuses = []
    for moves in ([], ["processing", "loaded"], ["processing", "failed"], ["rejected"], ["processing"]):
        file_id = register(engine, store, f"status {moves}".encode(), "monthly")
        for move in moves:
            with engine.begin() as conn:
                set_status(conn, file_id, move, "test")
        statuses.append(api.get(f"{LIST}{file_id}", headers=operator).json()["status"])
    assert statuses == ["Received", "Processed", "Failed", "Rejected", "Processing"]


@pytest.mark.parametrize("file_id", ["999", "0", "-1", "abc", "1;DROP TABLE cdr_files", "9" * 30, "1.0"])
def test_unknown_or_non_integer_id_is_404(api: httpx.Client, operator, seven, file_id):
    response = api.get(LIST + file_id, headers=operator)
    assert response.status_code == 404, response.text
    assert response.json()["error"]["code"] == 404


def test_credentials_are_required(api: httpx.Client, seven):
    assert api.get(LIST).status_code == 401
    assert api.get(LIST + "1").status_code == 401
    assert api.post(LIST, data={"carrier": "acme"}, files={"file": ("a.csv", b"x")}).status_code == 401


def test_an_account_sees_its_carriers_files_and_its_uploads_only(api: httpx.Client, engine, store, make_token):
    add_carrier(engine, "acme", account_id="a1")
    add_carrier(engine, "other", account_id="a2")
    add_carrier(engine, "house")  # no account: operators only
    acme = register(engine, store, b"acme")
    other = register(engine, store, b"other", "other")
    house = register(engine, store, b"house", "house")
    uploaded = register(engine, store, b"house, uploaded by a1", "house", account_id="a1")
    a1, a2, op = auth(make_token("a1")), auth(make_token("a2")), auth(make_token(None))
    assert ids(api.get(LIST, headers=a1)) == [str(acme), str(uploaded)]
    assert ids(api.get(LIST, headers=a2)) == [str(other)]
    assert ids(api.get(LIST, headers=op)) == [str(i) for i in (acme, other, house, uploaded)]
    assert ids(api.get(LIST, params={"idAfter": acme}, headers=a2)) == [str(other)]
    for file_id in (other, house):  # another's file is not found, exactly as a file that does not exist
        foreign = api.get(f"{LIST}{file_id}", headers=a1)
        missing = api.get(f"{LIST}99", headers=a1)
        assert foreign.status_code == missing.status_code == 404
        assert foreign.json()["error"]["message"].replace(str(file_id), "N") == missing.json()["error"][
            "message"
        ].replace("99", "N")
    assert api.get(f"{LIST}{uploaded}", headers=a1).json()["carrier"] == "house"
    assert api.get(f"{LIST}{acme}", headers=a2).status_code == 404


def test_the_carrier_file_account_key_gives_an_account_its_carriers_files(api: httpx.Client, engine, store, make_token):
    configs = carrier_file.parse(
        "carriers:\n"
        "  - {code: acme, file_type: asterisk_csv, account: 1001}\n"
        "  - {code: kazoo, file_type: kazoo_json, account: 'a2'}\n"
        "  - {code: telco, file_type: telnyx_csv}\n"
    )
    assert [c.carrier.account_id for c in configs] == ["1001", "a2", None]
    with engine.begin() as conn:
        carriers.sync(conn, configs)
    files = {code: register(engine, store, code.encode(), code) for code in ("acme", "kazoo", "telco")}
    assert ids(api.get(LIST, headers=auth(make_token("1001")))) == [str(files["acme"])]
    # the file is the whole truth: a carrier whose account: is removed is operators' only again
    with engine.begin() as conn:
        carriers.sync(conn, carrier_file.parse("carriers:\n  - {code: acme, file_type: asterisk_csv}\n"))
        assert carriers.get(conn, "acme").account_id is None
    assert ids(api.get(LIST, headers=auth(make_token("1001")))) == []


def upload(api: httpx.Client, headers, data: bytes, carrier: str = "acme", name: str = "day.csv", **form):
    return api.post(LIST, headers=headers, data={"carrier": carrier, **form}, files={"file": (name, data)})


def test_upload_stores_the_bytes_and_a_second_upload_is_a_duplicate(
    api: httpx.Client, engine, make_token, api_state: Path
):
    add_carrier(engine, "acme", account_id="a1")
    a1 = auth(make_token("a1"))
    first = upload(api, a1, b"abc", notes="May, resent")
    assert first.status_code == 201, first.text
    body = first.json()
    assert list(body)[:23] == SEED_FIELDS
    assert (body["id"], body["status"], body["fileSource"], body["sourceKind"]) == ("1", "Received", "Upload", "upload")
    assert (body["originalHash"], body["fileSize"], body["notes"], body["fileName"]) == (
        SHA1_ABC,
        "3",
        "May, resent",
        "day.csv",
    )
    assert first.headers["Location"].endswith("/cdr/backend/api/v1/CDRFiles/1")
    assert api.get(first.headers["Location"], headers=a1).json() == body
    assert (api_state / "raw" / body["storedFileID"]).read_bytes() == b"abc"
    # the same bytes again, under another name: recorded, as a duplicate of the first
    second = upload(api, a1, b"abc", name="day-again.csv")
    assert second.status_code == 201, second.text
    dup = second.json()
    assert (dup["status"], dup["duplicateOf"], dup["originalHash"]) == ("Duplicate", "1", SHA1_ABC)
    assert "duplicate of file 1" in dup["processingLog"]
    assert ids(api.get(LIST, headers=a1)) == ["1", dup["id"]]
    with engine.connect() as conn:
        rows = conn.execute(text("SELECT account_id, file_source FROM cdr_files ORDER BY id")).all()
    assert [tuple(r) for r in rows] == [("a1", "upload"), ("a1", "upload")]


def test_upload_of_an_empty_and_of_a_larger_file(api: httpx.Client, engine, make_token, api_state: Path):
    add_carrier(engine, "acme")
    op = auth(make_token(None))
    empty = upload(api, op, b"", name="empty.csv")
    assert empty.status_code == 201, empty.text
    assert (empty.json()["originalHash"], empty.json()["fileSize"]) == (SHA1_EMPTY, "0")
    data = os.urandom(3 * 1024 * 1024 + 17)  # beyond the 1 MiB a spooled upload keeps in memory
    big = upload(api, op, data, name="big.csv", carrier="acme ")
    assert big.status_code == 201, big.text
    assert (big.json()["originalHash"], big.json()["fileSize"]) == (hashlib.sha1(data).hexdigest(), str(len(data)))
    assert (api_state / "raw" / big.json()["storedFileID"]).read_bytes() == data
    with engine.connect() as conn:  # an operator's upload belongs to no account
        assert conn.execute(text("SELECT count(*) FROM cdr_files WHERE account_id IS NULL")).scalar() == 2


def test_upload_refusals_record_nothing(api: httpx.Client, engine, make_token):
    add_carrier(engine, "acme", account_id="a1")
    add_carrier(engine, "other", account_id="a2")
    a1 = auth(make_token("a1"))
    foreign = upload(api, a1, b"x", carrier="other")
    assert foreign.status_code == 403 and "'other'" in foreign.json()["error"]["message"]
    unknown = upload(api, a1, b"x", carrier="nosuch'; DROP TABLE cdr_files; --")
    assert unknown.status_code == 400
    message = unknown.json()["error"]["message"]
    assert message.startswith("unknown carrier \"nosuch'; DROP") and message.endswith("upload for: acme")
    assert "other" not in message  # another account's carriers are not named
    assert upload(api, a1, b"x", carrier="").status_code == 400
    assert upload(api, a1, b"x", carrier="c" * 10_000).status_code == 400
    assert upload(api, a1, b"x", notes="n" * 10_001).status_code == 400
    no_carrier = api.post(LIST, headers=a1, files={"file": ("a.csv", b"x")})
    assert no_carrier.status_code == 400 and "carrier" in no_carrier.json()["error"]["message"]
    no_file = api.post(LIST, headers=a1, data={"carrier": "acme"})
    assert no_file.status_code == 400 and "file" in no_file.json()["error"]["message"]
    assert api.post(LIST, headers=a1, json={"carrier": "acme"}).status_code == 400
    with engine.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM cdr_files")).scalar() == 0
    # the unslashed spelling takes uploads as well
    done = api.post(LIST.rstrip("/"), headers=a1, data={"carrier": "acme"}, files={"file": ("a.csv", b"x")})
    assert done.status_code == 201


def test_the_members_of_an_uploaded_archive_are_the_uploaders(api: httpx.Client, engine, make_token, api_state):
    add_carrier(engine, "acme", account_id="a1")
    a1 = auth(make_token("a1"))
    packed = io.BytesIO()
    with zipfile.ZipFile(packed, "w") as z:
        z.writestr("day1.csv", "one\n")
        z.writestr("day2.csv", "two\n")
    archive = upload(api, a1, packed.getvalue(), name="days.zip")
    assert archive.status_code == 201, archive.text
    archives.unpack(engine, RawStore((api_state / "raw").as_uri()), int(archive.json()["id"]))
    add_carrier(engine, "acme", account_id=None)  # the carrier is no longer a1's: its uploads still are
    listed = api.get(LIST, headers=a1).json()
    assert [(f["fileName"], f["status"]) for f in listed] == [
        ("days.zip", "Processed"),
        ("day1.csv", "Received"),
        ("day2.csv", "Received"),
    ]
