"""A real OpenSSH server on loopback, serving SFTP, for the SFTP collector's tests.

``sftp_server`` (one per test) runs ``/usr/sbin/sshd -D -e -f CONFIG`` on a free high port of
127.0.0.1 with its own ed25519 host key and a throwaway configuration: only SFTP
(``internal-sftp``, started in the served directory), only the test user ``cdrflowtest``, with a
password and with a client key. The user is a system account created once (``useradd``; the
tests run as root, as CI does); its password is (re)set at every start with ``chpasswd``.

sshd runs the SFTP session as ``cdrflowtest`` while the tests write files as root, so the served
directory carries a default POSIX ACL granting the user full access: files and directories the
test creates anywhere below it can be read, moved and deleted over SFTP.

When sshd is missing or does not start, the fixture FAILS with the reason and sshd's own log:
a collector test that silently skips proves nothing. The server (the process it started, by its
id) is stopped at teardown and its directories removed.
"""

from __future__ import annotations

import json
import os
import pwd
import shutil
import socket
import struct
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

SSHD = "/usr/sbin/sshd"
USER = "cdrflowtest"
PASSWORD = "sftp-test-secret-1"
INSTALL_HINT = (
    "install it with: apt-get install openssh-server openssh-sftp-server (scripts/install-test-services.sh does)"
)

CONFIG = """\
Port {port}
ListenAddress 127.0.0.1
HostKey {etc}/ssh_host_ed25519_key
PidFile {etc}/sshd.pid
UsePAM no
PermitRootLogin no
AllowUsers {user}
PasswordAuthentication yes
KbdInteractiveAuthentication no
PubkeyAuthentication yes
AuthorizedKeysFile {etc}/authorized_keys
StrictModes no
DisableForwarding yes
Subsystem sftp internal-sftp -d {root}
ForceCommand internal-sftp -d {root}
LogLevel VERBOSE
"""


@dataclass(frozen=True)
class SftpServer:
    host: str
    port: int
    user: str
    password: str
    root: Path  # the served directory, as a local path (sessions start here)
    key_file: Path  # a private key (ed25519, no passphrase) the server accepts for ``user``

    def airflow_conn_json(self, **overrides: Any) -> str:
        """JSON for ``AIRFLOW_CONN_<ID>`` (conn_type sftp). Keyword arguments replace fields,
        e.g. ``password="wrong"``, ``port=closed_port``, ``extra={...}``."""
        conn = {
            "conn_type": "sftp",
            "host": self.host,
            "port": self.port,
            "login": self.user,
            "password": self.password,
            # loopback test server: skip host key checking, do not try the runner's own keys
            "extra": {"no_host_key_check": True, "look_for_keys": False, "conn_timeout": 10},
        }
        conn.update(overrides)
        return json.dumps(conn)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _run(*cmd: str, **kwargs: Any) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, capture_output=True, text=True, timeout=30, **kwargs)


def _ensure_user() -> int:
    if os.geteuid() != 0:
        pytest.fail(f"the sftp_server fixture needs root (it creates the system user {USER} and runs sshd)")
    try:
        uid = pwd.getpwnam(USER).pw_uid
    except KeyError:
        done = _run(
            "useradd",
            "--system",
            "--no-create-home",
            "--home-dir",
            "/nonexistent",
            "--shell",
            "/usr/sbin/nologin",
            USER,
        )
        if done.returncode != 0 and "already exists" not in done.stderr:
            pytest.fail(f"cannot create the test user {USER}: {done.stderr.strip()}")
        uid = pwd.getpwnam(USER).pw_uid
    done = _run("chpasswd", input=f"{USER}:{PASSWORD}\n")
    if done.returncode != 0:
        pytest.fail(f"cannot set the password of {USER}: {done.stderr.strip()}")
    return uid


def _grant(directory: Path, uid: int) -> None:
    """Give ``uid`` rwx on ``directory`` and, by default ACL, on everything created below it.
    (The kernel's POSIX ACL xattr format: version 2, then (tag, perm, id) entries by tag.)"""
    undefined = 0xFFFFFFFF
    entries = [
        (0x01, 7, undefined),
        (0x02, 7, uid),
        (0x04, 7, undefined),
        (0x10, 7, undefined),
        (0x20, 5, undefined),
    ]  # user::rwx user:uid:rwx group::rwx mask::rwx other::r-x
    acl = struct.pack("<I", 2) + b"".join(struct.pack("<HHI", *e) for e in entries)
    try:
        os.setxattr(directory, "system.posix_acl_access", acl)
        os.setxattr(directory, "system.posix_acl_default", acl)
    except OSError as exc:
        pytest.fail(
            f"cannot set a POSIX ACL on {directory} for {USER}: {exc.strerror} "
            "(the temp directory's file system must support ACLs)"
        )


def _wait_ready(proc: subprocess.Popen, port: int, log: Path, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"sshd exited with status {proc.returncode} at start:\n{log.read_text()}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1) as s:
                if s.recv(64).startswith(b"SSH-"):
                    return
        except OSError:
            time.sleep(0.05)
    pytest.fail(f"sshd did not answer on 127.0.0.1:{port} within {timeout:.0f} s:\n{log.read_text()}")


@pytest.fixture
def sftp_server() -> Iterator[SftpServer]:
    """A running sshd serving SFTP on 127.0.0.1 (see the module docstring)."""
    if not os.access(SSHD, os.X_OK):
        pytest.fail(f"OpenSSH server not found at {SSHD}: {INSTALL_HINT}")
    uid = _ensure_user()
    base = Path(tempfile.mkdtemp(prefix="cdrflow-sshd-"))  # not pytest's tmp_path: 0700, closed to the user
    proc = None
    try:
        base.chmod(0o755)
        etc, root = base / "etc", base / "root"
        etc.mkdir()
        root.mkdir()
        _grant(root, uid)
        for name in ("ssh_host_ed25519_key", "client_ed25519_key"):
            done = _run("ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", name, "-f", str(etc / name))
            if done.returncode != 0:
                pytest.fail(f"ssh-keygen failed: {done.stderr.strip()}")
        shutil.copy(etc / "client_ed25519_key.pub", etc / "authorized_keys")
        (etc / "authorized_keys").chmod(0o644)
        Path("/run/sshd").mkdir(mode=0o755, exist_ok=True)  # sshd's privilege separation directory
        port = free_port()
        config = etc / "sshd_config"
        config.write_text(CONFIG.format(port=port, etc=etc, root=root, user=USER))
        log = etc / "sshd.log"
        with open(log, "wb") as log_file:
            proc = subprocess.Popen(
                [SSHD, "-D", "-e", "-f", str(config)],
                stdout=log_file,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
            )
        _wait_ready(proc, port, log)
        yield SftpServer(
            host="127.0.0.1", port=port, user=USER, password=PASSWORD, root=root, key_file=etc / "client_ed25519_key"
        )
    finally:
        if proc is not None:
            proc.terminate()
            try:
                proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        shutil.rmtree(base, ignore_errors=True)
