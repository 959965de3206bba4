"""The main job (`make demo`): three carriers, three formats, collected and loaded by Airflow."""

from __future__ import annotations

from sqlalchemy import create_engine, text

from conftest import run_cli


def test_demo_collects_three_formats_through_airflow_and_spots_the_resent_file(tmp_path, new_database):
    url = new_database()
    state = tmp_path / "state"
    env = {"CDRFLOW_STATE_DIR": str(state), "CDRFLOW_DATABASE_URL": url}
    out = run_cli("demo", env=env, timeout=300)
    assert out.returncode == 0, out.stderr
    assert "cdrflow_collect_bucket success, cdrflow_process success" in out.stdout
    assert "6 files in" in out.stdout
    assert "5 new, 1 duplicate(s); 5698 calls loaded, 2 rows quarantined" in out.stdout
    engine = create_engine(url)
    with engine.connect() as conn:
        rows = conn.execute(
            text("SELECT file_name, carrier, file_type, file_source, status FROM cdr_files ORDER BY id")
        ).all()
        assert conn.execute(text("SELECT count(*) FROM calls")).scalar() == 5698
        assert conn.execute(text("SELECT count(*) FROM rejected_rows")).scalar() == 2
    assert {r.file_type for r in rows} == {"asterisk_csv", "kazoo_json", "telnyx_csv"}
    assert {r.file_source for r in rows} == {"bucket"}
    assert sorted(r.status for r in rows) == ["duplicate"] + ["loaded"] * 5
    assert [r.file_name for r in rows if r.status == "duplicate"] == ["resent-Master-20261101-a.csv"]
    # the upload folders are emptied into processed/ by the collector
    assert [p.name for p in (state / "uploads" / "acme").iterdir()] == ["processed"]

    again = run_cli("demo", env=env, timeout=300)  # same bytes again: everything is a duplicate now
    assert again.returncode == 0, again.stderr
    assert "0 new, 6 duplicate(s); 0 calls loaded" in again.stdout
    with engine.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM cdr_files WHERE duplicate_of IS NULL")).scalar() == 5
        assert conn.execute(text("SELECT count(*) FROM calls")).scalar() == 5698
    engine.dispose()
