"""The seed APIs in a real server process: ``uvicorn --factory cdrflow.api.app:standalone_app`` on
a free loopback port, on a given warehouse, its output (the access log included) in a file."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import httpx
from tests.servers.dovecot import free_port


@dataclass
class ApiServer:
    base_url: str  # http://127.0.0.1:PORT/cdr
    log_file: Path
    process: subprocess.Popen

    def log(self) -> str:
        return self.log_file.read_text(errors="replace")

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()


def start(database_url: str, state_dir: Path, env: dict[str, str] | None = None, workers: int = 1) -> ApiServer:
    port = free_port()
    state_dir.mkdir(parents=True, exist_ok=True)
    log_file = state_dir / f"api-{port}.log"
    full_env = {**os.environ, "CDRFLOW_DATABASE_URL": database_url, "CDRFLOW_STATE_DIR": str(state_dir), **(env or {})}
    command = [sys.executable, "-m", "uvicorn", "--factory", "cdrflow.api.app:standalone_app"]
    command += ["--host", "127.0.0.1", "--port", str(port), "--workers", str(workers)]
    out = log_file.open("wb")
    process = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, env=full_env)
    base = f"http://127.0.0.1:{port}/cdr"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"the API server exited ({process.returncode}):\n{log_file.read_text()}")
        try:
            if httpx.get(base + "/openapi.json", timeout=2).status_code == 200:
                return ApiServer(base, log_file, process)
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    process.kill()
    raise RuntimeError(f"the API server did not answer within 60 s:\n{log_file.read_text()}")
