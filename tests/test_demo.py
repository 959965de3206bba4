"""The main job (`make demo`): sample files in two formats registered and loaded, one duplicate."""

from __future__ import annotations

from sqlalchemy import create_engine, text

from conftest import run_cli


def test_demo_registers_two_formats_and_spots_the_resent_file(tmp_path, new_database):
    url = new_database()
    env = {"CDRFLOW_STATE_DIR": str(tmp_path / "state"), "CDRFLOW_DATABASE_URL": url}
    out = run_cli("demo", env=env)
    assert out.returncode == 0, out.stderr
    assert "5 files in" in out.stdout and "4 new, 1 duplicate(s); 4898 calls loaded, 2 rows quarantined" in out.stdout
    engine = create_engine(url)
    with engine.connect() as conn:
        rows = conn.execute(text(
            "SELECT file_name, carrier, file_type, status, duplicate_of FROM cdr_files ORDER BY id")).all()
    assert {r.file_type for r in rows} == {"asterisk_csv", "kazoo_json"}
    dup = [r for r in rows if r.status == "duplicate"]
    assert len(dup) == 1 and dup[0].file_name.startswith("resent-")
    assert sorted(r.status for r in rows) == ["duplicate", "loaded", "loaded", "loaded", "loaded"]
    with engine.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM calls")).scalar() == 4898
        assert conn.execute(text("SELECT count(*) FROM rejected_rows")).scalar() == 2

    again = run_cli("demo", env=env)  # same bytes again: everything is a duplicate now
    assert again.returncode == 0, again.stderr
    assert "0 new, 5 duplicate(s); 0 calls loaded" in again.stdout
    with engine.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM cdr_files WHERE duplicate_of IS NULL")).scalar() == 4
        assert conn.execute(text("SELECT count(*) FROM calls")).scalar() == 4898
    engine.dispose()
