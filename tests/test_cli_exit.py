"""The ``cdrflow`` command ends without tearing its modules down (``cdrflow.cli.main.run``):
its exit statuses and its whole output are what they were."""

from __future__ import annotations

from cdrflow.dev import generate
from conftest import run_cli


def test_exit_statuses_are_those_of_python_and_argparse():
    helped = run_cli("load", "--help")
    assert helped.returncode == 0 and helped.stdout.startswith("usage: cdrflow load")
    wrong = run_cli("no-such-command")
    assert wrong.returncode == 2 and "invalid choice: 'no-such-command'" in wrong.stderr
    missing = run_cli("parse", "/nonexistent/Master.csv", "--type", "asterisk_csv")
    assert missing.returncode == 1 and missing.stderr.strip()


def test_a_long_output_through_a_pipe_arrives_whole(tmp_path):
    path = generate.write_asterisk_csv_fast(tmp_path / "Master.csv", 3000, seed=3, order="time", columns=21)
    out = run_cli("parse", str(path), "--type", "asterisk_csv")  # the rows on stdout, a pipe
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert len(lines) == 3001  # a header and every call: nothing left in a buffer at exit
    assert "3000 calls, 0 rejected rows" in out.stderr
