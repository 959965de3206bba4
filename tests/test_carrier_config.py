"""The carrier configuration file: the shipped one loads, mistakes are named, no credentials."""

from __future__ import annotations

import pytest
from sqlalchemy import text

from cdrflow.config import carrier_file
from cdrflow.config.errors import ConfigurationError
from cdrflow.warehouse import carriers
from conftest import run_cli


def test_the_shipped_file_loads_into_the_carriers_table(engine):
    configs = carrier_file.load(carrier_file.DEFAULT_FILE)
    assert {c.code: c.carrier.file_type for c in configs} == {
        "acme": "asterisk_csv",
        "kazoo": "kazoo_json",
        "telco": "telnyx_csv",
    }
    with engine.begin() as conn:
        carriers.sync(conn, configs)
        carriers.sync(conn, configs)  # twice: nothing changes
        rows = conn.execute(
            text("SELECT code, file_type, delivery, reject_threshold FROM carriers ORDER BY code")
        ).all()
    assert [(r.code, r.file_type, r.delivery, float(r.reject_threshold)) for r in rows] == [
        ("acme", "asterisk_csv", "daily", 0.05),
        ("kazoo", "kazoo_json", "daily", 0.05),
        ("telco", "telnyx_csv", "daily", 0.05),
    ]


FULL = """
carriers:
  - code: acme
    name: ACME
    file_type: mapped
    mapping: mappings/opensips_acc_csv.yaml
    billable: false
    delivery: monthly
    reject_threshold: 0.1
    timezone: Europe/Paris
    encoding: latin-1
    sources:
      - {kind: mailbox, conn_id: m, senders: "*@acme.example", attachments: ["*.csv"], processed_folder: null}
      - {kind: sftp, conn_id: s, directories: [/out], settle_seconds: 0, done_marker: .done, after: move, move_to: /done}
      - {kind: ftp, conn_id: f, directories: /out, after: delete}
      - {kind: bucket, url: "s3://drop/acme/", conn_id: aws}
"""


def test_every_key_is_read():
    (acme,) = carrier_file.parse(FULL)
    c = acme.carrier
    assert (c.file_type, c.mapping, c.billable, c.delivery, c.reject_threshold) == (
        "mapped",
        "mappings/opensips_acc_csv.yaml",
        False,
        "monthly",
        0.1,
    )
    # billable_leg: the OpenSIPS mapping's own rule (the carrier sets none)
    assert c.config == {"timezone": "Europe/Paris", "encoding": "latin-1", "billable_leg": "merged"}
    mailbox, sftp, ftp, bucket = acme.sources
    assert mailbox.senders == ("*@acme.example",) and mailbox.processed_folder is None
    assert (sftp.kind, sftp.done_marker, sftp.after, sftp.move_to, sftp.settle_seconds) == (
        "sftp",
        ".done",
        "move",
        "/done",
        0,
    )
    assert (ftp.kind, ftp.directories, ftp.after) == ("ftp", ("/out",), "delete")
    assert (bucket.url, bucket.conn_id, bucket.processed_prefix) == ("s3://drop/acme/", "aws", "processed/")
    assert [k for k, _ in carrier_file.sources_of_kind([acme], "sftp")] == ["acme"]


@pytest.mark.parametrize(
    "yaml_text, message",
    [
        ("carriers:\n  - code: a\n    file_type: asterisk_csv\n    sourcse: []\n", "unknown key(s) sourcse"),
        ("carriers:\n  - code: a\n    file_type: csv\n", "carrier a: file_type: unknown file type 'csv'; known: "),
        ("carriers:\n  - code: a\n    file_type: mapped\n", "carrier a: file_type mapped needs a mapping file"),
        (
            "carriers:\n  - code: a\n    file_type: mapped\n    mapping: mappings/nope.yaml\n",
            "carrier a: mapping: no such mapping file 'mappings/nope.yaml'",
        ),
        (
            "carriers:\n  - code: acme\n    file_type: asterisk_csv\n    timezone: Europe/Berlln\n",
            "carrier acme: timezone: unknown time zone 'Europe/Berlln'",
        ),
        (
            "carriers:\n  - code: acme\n    file_type: asterisk_csv\n    encoding: klingon-8\n",
            "carrier acme: encoding: unknown encoding 'klingon-8'",
        ),
        (
            "carriers:\n  - code: ACME Corp\n    file_type: asterisk_csv\n",
            "carrier ACME Corp: code: 'ACME Corp' is not a carrier code (lower-case letters",
        ),
        (
            "carriers:\n  - code: a\n    file_type: asterisk_csv\n    delivery: weekly\n",
            "carrier a: delivery: unknown delivery 'weekly'; known: daily or monthly",
        ),
        (
            "carriers:\n  - code: a\n    file_type: asterisk_csv\n    reject_threshold: 2\n",
            "carrier a: reject_threshold: input should be less than or equal to 1, got 2",
        ),
        ("carriers:\n  - name: x\n    file_type: asterisk_csv\n", "carrier #1: missing code"),
        (
            "carriers:\n  - code: a\n    file_type: asterisk_csv\n    sources: [{kind: mailbox, conn_id: m, senders: []}]\n",
            "carrier a, source #1: senders: cannot be empty",
        ),
        (
            "carriers:\n  - code: a\n    file_type: asterisk_csv\n    sources: [{kind: sftp, conn_id: s, directories: /x, after: burn}]\n",
            "carrier a, source #1: after: unknown after action 'burn'; known: keep, delete or move",
        ),
        (
            "carriers:\n  - code: a\n    file_type: asterisk_csv\n    sources: [{kind: ftp, conn_id: f, directories: /x, settle_seconds: -1}]\n",
            "carrier a, source #1: settle_seconds: input should be greater than or equal to 0, got -1",
        ),
        (
            "carriers:\n  - code: a\n    file_type: asterisk_csv\n    sources: [{kind: sftp, conn_id: s}]\n",
            "carrier a, source #1: missing directories",
        ),
        (
            "carriers:\n  - code: a\n    file_type: asterisk_csv\n    sources: [{kind: sftp, conn_id: s, directories: [/x], password: p}]\n",
            "unknown key(s) password",
        ),
        (
            "carriers:\n  - code: a\n    file_type: asterisk_csv\n    sources: [{kind: sftp, conn_id: s, directories: [/x], after: move}]\n",
            "after: move needs move_to",
        ),
        (
            "carriers:\n  - code: a\n    file_type: asterisk_csv\n    sources: [{kind: gopher}]\n",
            "unknown source kind 'gopher'",
        ),
        ("carriers:\n  - code: a\n    file_type: asterisk_csv\n  - code: a\n    file_type: asterisk_csv\n", "unique"),
        ("carriers: [\n", "not valid YAML"),
    ],
)
def test_mistakes_are_errors_that_name_the_carrier_and_the_key(yaml_text, message):
    with pytest.raises(ConfigurationError) as caught:
        carrier_file.parse(yaml_text)
    assert message in str(caught.value)
    assert "\n" not in str(caught.value)  # one line


BAD_SETTINGS = """
carriers:
  - code: good
    file_type: asterisk_csv
  - code: acme
    file_type: asterisk_csv
    timezone: Europe/Berlln
"""


def test_a_bad_setting_fails_at_sync_in_one_line_and_nothing_is_synced(engine, warehouse_url, tmp_path):
    carriers_file = tmp_path / "carriers.yaml"
    carriers_file.write_text(BAD_SETTINGS)
    env = {"CDRFLOW_DATABASE_URL": warehouse_url, "CDRFLOW_CARRIERS_FILE": str(carriers_file)}
    out = run_cli("carriers", "sync", env=env)
    assert out.returncode == 1
    assert out.stderr == "error: carrier acme: timezone: unknown time zone 'Europe/Berlln'\n"
    with engine.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM carriers")).scalar() == 0


@pytest.mark.parametrize(
    "args, message",
    [
        (["ACME Corp", "--type", "asterisk_csv"], "error: carrier ACME Corp: code: 'ACME Corp' is not a carrier code"),
        (["acme", "--type", "asterisk_csv", "--encoding", "klingon-8"], "error: carrier acme: encoding: unknown"),
        (["acme", "--type", "csv"], "error: carrier acme: file_type: unknown file type 'csv'"),
        (["acme"], "error: carrier acme: missing file_type"),
        (["acme", "--type", "asterisk_csv", "--billable-leg", "first"], "error: carrier acme: billable_leg:"),
        (["acme", "--type", "asterisk_csv", "--country", "XX"], "error: carrier acme: dial_plan.country:"),
        (["acme", "--type", "asterisk_csv", "--check", "calee_number=reject"], "error: carrier acme: checks:"),
    ],
)
def test_carrier_add_is_checked_by_the_same_rules(engine, warehouse_url, args, message):
    out = run_cli("carrier", "add", *args, env={"CDRFLOW_DATABASE_URL": warehouse_url})
    assert out.returncode == 1
    assert out.stderr.startswith(message) and out.stderr.count("\n") == 1, out.stderr
    with engine.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM carriers")).scalar() == 0


def test_carrier_add_keeps_time_zone_and_encoding(engine, warehouse_url):
    args = ["acme", "--type", "asterisk_csv", "--timezone", "Europe/Paris", "--encoding", "latin-1", "--monthly"]
    out = run_cli("carrier", "add", *args, env={"CDRFLOW_DATABASE_URL": warehouse_url})
    assert out.returncode == 0, out.stderr
    with engine.connect() as conn:
        carrier = carriers.get(conn, "acme")
    assert (carrier.delivery, carrier.config) == ("monthly", {"timezone": "Europe/Paris", "encoding": "latin-1"})


def test_carrier_add_takes_the_billing_and_number_keys(engine, warehouse_url):
    args = ["acme", "--type", "asterisk_csv", "--billable-leg", "every_leg", "--buy-deck", "wholesale"]
    args += ["--country", "RU", "--check", "callee_number=reject"]
    out = run_cli("carrier", "add", *args, env={"CDRFLOW_DATABASE_URL": warehouse_url})
    assert out.returncode == 0, out.stderr
    with engine.connect() as conn:
        config = carriers.get(conn, "acme").config
    assert (config["billable_leg"], config["buy_deck"], config["dial_plan"]["country"]) == (
        "every_leg",
        "wholesale",
        "RU",
    )
    assert config["checks"] == {"expect_column_values_to_match_regex(callee_number)": "reject"}  # stored in full
