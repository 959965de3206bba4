"""A real Dovecot IMAP server on loopback for the mailbox collector's tests.

``imap_server`` starts ``dovecot -F -c FILE`` once per test session with a throwaway
configuration, maildir and base_dir in a temporary directory, plain IMAP (``ssl = no``) on a free
high port of 127.0.0.1, and one test user in a passwd-file. It stops the server (the process it
started, by its id) at the end. When Dovecot is missing or does not start, the fixture FAILS with
the reason: a collector test that silently skips proves nothing.

The yielded :class:`DovecotServer` also places and inspects messages over IMAP itself (APPEND,
UID FETCH), so the tests see what a user of the mailbox would see.
"""

from __future__ import annotations

import email
import email.policy
import imaplib
import json
import os
import re
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from email.message import EmailMessage
from pathlib import Path

import pytest

INSTALL_HINT = "install it with: apt-get install dovecot-imapd (scripts/install-test-services.sh does)"

CONFIG = """\
protocols = imap
listen = 127.0.0.1
base_dir = {base_dir}
state_dir = {state_dir}
log_path = {log_path}
ssl = no
disable_plaintext_auth = no
auth_mechanisms = plain login
# tests of a wrong password should not wait the default 2 seconds
auth_failure_delay = 0
default_internal_user = {internal_user}
default_internal_group = {internal_group}
default_login_user = {login_user}
first_valid_uid = {uid}
last_valid_uid = 0
passdb {{
  driver = passwd-file
  args = scheme=PLAIN username_format=%u {passwd}
}}
userdb {{
  driver = static
  args = uid={uid} gid={gid} home={mail_root}/%u
}}
mail_location = maildir:{mail_root}/%u/Maildir
service imap-login {{
  inet_listener imap {{
    address = 127.0.0.1
    port = {port}
  }}
  inet_listener imaps {{
    port = 0
  }}
{login_extra}}}
service pop3-login {{
  inet_listener pop3 {{
    port = 0
  }}
}}
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _quote(mailbox: str) -> str:
    # imaplib sends mailbox names as given; a name with spaces or quotes must be quoted by hand.
    return '"' + mailbox.replace("\\", "\\\\").replace('"', '\\"') + '"'


@dataclass(frozen=True)
class StoredMessage:
    """A message as it sits in a folder."""

    uid: int
    subject: str
    flags: tuple[str, ...]


@dataclass
class DovecotServer:
    host: str
    port: int
    user: str
    password: str
    workdir: Path

    # -- Airflow connection ------------------------------------------------------------------
    def airflow_conn_json(self, **overrides) -> str:
        """JSON for an ``AIRFLOW_CONN_<ID>`` variable (conn_type imap, plain IMAP). Keyword
        arguments replace fields, e.g. ``password="wrong"`` or ``port=1``."""
        conn = {
            "conn_type": "imap",
            "host": self.host,
            "port": self.port,
            "login": self.user,
            "password": self.password,
            "extra": {"use_ssl": False},
        }
        conn.update(overrides)
        return json.dumps(conn)

    @staticmethod
    def env_name(conn_id: str) -> str:
        """The environment variable Airflow reads the connection ``conn_id`` from."""
        return f"AIRFLOW_CONN_{conn_id.upper()}"

    # -- placing and inspecting messages -----------------------------------------------------
    @contextmanager
    def client(self) -> Iterator[imaplib.IMAP4]:
        """A logged-in client of the test user (for test setup and checks)."""
        c = imaplib.IMAP4(self.host, self.port, timeout=10)
        try:
            c.login(self.user, self.password)
            yield c
        finally:
            try:
                c.logout()
            except (imaplib.IMAP4.error, OSError):
                pass

    def folders(self) -> list[str]:
        with self.client() as c:
            _, data = c.list()
        names = []
        for line in data:
            # (\HasNoChildren) "." INBOX   |   (\HasNoChildren) "." "with space"
            m = re.match(rb'\((?P<flags>[^)]*)\) (?:"[^"]*"|NIL) (?P<name>.+)$', line)
            if m:
                name = m["name"].decode()
                names.append(name[1:-1].replace('\\"', '"').replace("\\\\", "\\") if name.startswith('"') else name)
        return names

    def append(self, folder: str, message: EmailMessage | bytes, flags: str = "") -> None:
        """IMAP APPEND ``message`` to ``folder`` (created when missing), e.g. flags="(\\Flagged)"."""
        raw = message if isinstance(message, bytes) else message.as_bytes(policy=email.policy.SMTP)
        with self.client() as c:
            if folder.upper() != "INBOX" and folder not in self.folders():
                c.create(_quote(folder))
            typ, data = c.append(_quote(folder), flags or None, None, raw)
            assert typ == "OK", f"APPEND to {folder} failed: {data}"

    def messages(self, folder: str = "INBOX") -> list[StoredMessage]:
        """The messages of ``folder`` in UID order ([] when the folder does not exist)."""
        with self.client() as c:
            typ, _ = c.select(_quote(folder), readonly=True)
            if typ != "OK":
                return []
            _, data = c.uid("FETCH", "1:*", "(UID FLAGS BODY.PEEK[HEADER.FIELDS (SUBJECT)])")
        found = []
        for item in data:
            if not isinstance(item, tuple):
                continue
            head, body = item
            uid = int(re.search(rb"UID (\d+)", head)[1])
            flags = tuple(f.decode() for f in re.search(rb"FLAGS \(([^)]*)\)", head)[1].split())
            subject = email.message_from_bytes(body, policy=email.policy.default)["Subject"] or ""
            found.append(StoredMessage(uid, str(subject), flags))
        return sorted(found, key=lambda m: m.uid)

    def subjects(self, folder: str = "INBOX") -> list[str]:
        return [m.subject for m in self.messages(folder)]

    def reset(self) -> None:
        """Delete every folder but INBOX and every message of INBOX."""
        with self.client() as c:
            for name in sorted(self.folders(), key=len, reverse=True):  # children first
                if name.upper() != "INBOX":
                    c.delete(_quote(name))
            c.select("INBOX")
            typ, data = c.search(None, "ALL")
            if data and data[0]:
                c.store("1:*", "+FLAGS.SILENT", r"(\Deleted)")
                c.expunge()
            c.close()


def _identity() -> dict[str, object]:
    """Users the server runs as. As root (CI): mail is stored as ``mail`` (Dovecot refuses uid
    0), with the packaged ``dovecot``/``dovenull`` users. Otherwise everything runs as us and
    nothing may chroot."""
    if os.geteuid() == 0:
        import grp
        import pwd

        try:
            mail = pwd.getpwnam("mail")
            gid = grp.getgrnam("mail").gr_gid
        except KeyError:
            pytest.fail("the imap_server fixture needs the system user and group 'mail'")
        return {
            "uid": mail.pw_uid,
            "gid": gid,
            "internal_user": "dovecot",
            "internal_group": "dovecot",
            "login_user": "dovenull",
            "login_extra": "",
        }
    import grp
    import pwd

    me, group = pwd.getpwuid(os.getuid()).pw_name, grp.getgrgid(os.getgid()).gr_name
    return {
        "uid": os.getuid(),
        "gid": os.getgid(),
        "internal_user": me,
        "internal_group": group,
        "login_user": me,
        "login_extra": "  chroot =\n",
    }


def _wait_ready(host: str, port: int, proc: subprocess.Popen, deadline: float) -> str | None:
    """None once the server greets, else why not."""
    last = "no answer"
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            return f"dovecot exited with code {proc.returncode}"
        try:
            with socket.create_connection((host, port), timeout=1) as s:
                greeting = s.recv(200)
                if greeting.startswith(b"* OK"):
                    return None
                last = f"unexpected greeting {greeting!r}"
        except OSError as exc:
            last = str(exc)
        time.sleep(0.05)
    return f"no IMAP greeting on {host}:{port} within the time limit ({last})"


@pytest.fixture(scope="session")
def imap_server() -> Iterator[DovecotServer]:
    with running_dovecot() as server:
        yield server


@contextmanager
def running_dovecot(extra_config: str = "") -> Iterator[DovecotServer]:
    """A Dovecot of its own (the ``imap_server`` fixture's), with ``extra_config`` appended to its
    configuration (e.g. ``imap_capability = ...`` for a server without IDLE); stopped at the end."""
    binary = shutil.which("dovecot") or ("/usr/sbin/dovecot" if os.access("/usr/sbin/dovecot", os.X_OK) else None)
    if not binary:
        pytest.fail(f"Dovecot is not installed; {INSTALL_HINT}", pytrace=False)
    # Not pytest's tmp_path: its parent is private (0700) and the mail user must reach the maildir.
    workdir = Path(tempfile.mkdtemp(prefix="cdrflow-dovecot-"))
    workdir.chmod(0o755)
    ident = _identity()
    mail_root = workdir / "mail"
    mail_root.mkdir()
    os.chown(mail_root, ident["uid"], ident["gid"])
    user, password = "cdrtest", "s3cret-imap"
    passwd = workdir / "passwd"
    passwd.write_text(f"{user}:{{PLAIN}}{password}\n")
    passwd.chmod(0o644)  # read by the auth process (user dovecot); a throwaway test password
    port = free_port()
    config = workdir / "dovecot.conf"
    log_path = workdir / "dovecot.log"
    (workdir / "state").mkdir()
    config.write_text(
        CONFIG.format(
            base_dir=workdir / "run",
            state_dir=workdir / "state",
            log_path=log_path,
            passwd=passwd,
            mail_root=mail_root,
            port=port,
            **ident,
        )
        + extra_config
    )
    stderr = open(workdir / "stderr.log", "wb")
    # -F: stay in the foreground, so that this process is the one we stop.
    proc = subprocess.Popen([binary, "-F", "-c", str(config)], stdout=stderr, stderr=stderr)
    problem = _wait_ready("127.0.0.1", port, proc, time.monotonic() + 15)
    if problem:
        proc.terminate()
        proc.wait(10)
        stderr.close()
        logs = "\n".join(
            p.read_text(errors="replace")[-2000:] for p in (workdir / "stderr.log", log_path) if p.exists()
        )
        shutil.rmtree(workdir, ignore_errors=True)
        pytest.fail(f"Dovecot did not start ({problem}); config {config}:\n{logs}", pytrace=False)
    server = DovecotServer("127.0.0.1", port, user, password, workdir)
    try:
        yield server
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)
        stderr.close()
        shutil.rmtree(workdir, ignore_errors=True)
