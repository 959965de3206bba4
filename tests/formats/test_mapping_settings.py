"""A mapping file's time zone and encoding are checked when it is read, like the carrier file's."""

from __future__ import annotations

import pytest

from cdrflow.formats.mapping_schema import MappingError, load_mapping

BASE = "columns: {carrier_call_id: 0, start_time: 1}\n"


@pytest.mark.parametrize(
    "line, message",
    [
        ("timezone: Europe/Berlln\n", "timezone: unknown time zone 'Europe/Berlln'"),
        ("encoding: klingon-8\n", "encoding: unknown encoding 'klingon-8'"),
    ],
)
def test_an_unknown_zone_or_encoding_in_a_mapping_names_the_file_and_the_key(tmp_path, line, message):
    path = tmp_path / "carrier.yaml"
    path.write_text(BASE + line)
    with pytest.raises(MappingError) as caught:
        load_mapping(path)
    assert str(caught.value) == f"{path}: {message}"


def test_a_known_zone_and_encoding_are_kept(tmp_path):
    path = tmp_path / "carrier.yaml"
    path.write_text(BASE + "timezone: Europe/Berlin\nencoding: latin-1\n")
    assert load_mapping(path)["timezone"] == "Europe/Berlin"


@pytest.mark.parametrize("zone", ["+02:00", "-0530", "utc", "America/New_York"])
def test_fixed_offsets_and_utc_in_any_case_are_time_zones(tmp_path, zone):
    path = tmp_path / "carrier.yaml"
    path.write_text(BASE + f'timezone: "{zone}"\n')
    assert load_mapping(path)["timezone"] == zone
