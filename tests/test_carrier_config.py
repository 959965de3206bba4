"""The carrier configuration file: the shipped one loads, mistakes are named, no credentials."""

from __future__ import annotations

import pytest
from sqlalchemy import text

from cdrflow.config import carrier_file
from cdrflow.config.errors import ConfigurationError


def test_the_shipped_file_loads_into_the_carriers_table(engine):
    configs = carrier_file.load(carrier_file.DEFAULT_FILE)
    assert {c.code: c.carrier.file_type for c in configs} == {
        "acme": "asterisk_csv",
        "kazoo": "kazoo_json",
        "telco": "telnyx_csv",
    }
    with engine.begin() as conn:
        carrier_file.sync(conn, configs)
        carrier_file.sync(conn, configs)  # twice: nothing changes
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
    assert c.config == {"timezone": "Europe/Paris", "encoding": "latin-1"}
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
        ("carriers:\n  - code: a\n    file_type: csv\n", "file_type must be one of"),
        ("carriers:\n  - code: a\n    file_type: mapped\n", "needs a mapping file"),
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
    with pytest.raises(ConfigurationError, match=message.replace("(", r"\(").replace(")", r"\)")):
        carrier_file.parse(yaml_text)
