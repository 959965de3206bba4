"""Registering a 1 GB file keeps memory flat: the bytes stream through, never held whole."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import pytest

SCRIPT = textwrap.dedent("""
    import io, json, sys
    from sqlalchemy import create_engine
    from cdrflow.intake.rawstore import RawStore
    from cdrflow.intake.registry import register_file

    class Generated(io.RawIOBase):
        '''size bytes of CDR-like text, produced on demand.'''
        def __init__(self, size):
            self.left = size
            self.block = (b'"acct","+15551234567","+442071234567","2026-11-01 10:00:00",60\\n' * 16384)
        def readable(self):
            return True
        def readinto(self, buf):
            n = min(len(buf), self.left, len(self.block))
            buf[:n] = self.block[:n]
            self.left -= n
            return n

    url, store_url, size = sys.argv[1], sys.argv[2], int(sys.argv[3])
    engine = create_engine(url)
    store = RawStore(store_url)
    def peak_kib():
        # VmHWM: this process's own peak (ru_maxrss would include the pytest parent's, kept across exec)
        for line in open("/proc/self/status"):
            if line.startswith("VmHWM:"):
                return int(line.split()[1])

    before = peak_kib()
    reg = register_file(engine, store, io.BufferedReader(Generated(size), 1 << 20),
                        file_name=f"big-{size}.csv", carrier="acme", file_source="upload")
    after = peak_kib()
    print(json.dumps({"size": reg.size, "before_kib": before, "after_kib": after}))
""")


def _register(warehouse_url: str, store_url: str, size: int) -> dict:
    out = subprocess.run(
        [sys.executable, "-c", SCRIPT, warehouse_url, store_url, str(size)], capture_output=True, text=True, timeout=300
    )
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout.strip().splitlines()[-1])


@pytest.mark.slow
def test_a_1_gb_file_registers_with_flat_memory(engine, carrier, tmp_path, warehouse_url):
    store_url = (tmp_path / "raw").as_uri()
    small = _register(warehouse_url, store_url, 1 << 20)
    big = _register(warehouse_url, store_url, 1 << 30)
    assert big["size"] == 1 << 30
    growth_mib = (big["after_kib"] - small["after_kib"]) / 1024
    print(
        f"peak RSS: 1 MiB file {small['after_kib'] / 1024:.0f} MiB, "
        f"1 GiB file {big['after_kib'] / 1024:.0f} MiB (growth {growth_mib:.1f} MiB)"
    )
    assert growth_mib < 32, f"peak memory grew by {growth_mib:.0f} MiB for a 1 GiB file"
