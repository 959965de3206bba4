"""``make cluster``: run on this machine, as processes, what ``docker-compose.yaml`` runs.

The compose file is the one description of the deployment: this script reads its services,
their commands, environment, volumes and ``depends_on`` and starts each Airflow service as a
process of its own (api-server, scheduler, dag-processor, triggerer, the Celery workers with
their own ``--celery-hostname`` and state folders), after running ``airflow-init``'s command.
The services that are not Airflow get a local equivalent: a database each for ``postgres`` and
``warehouse`` on a PostgreSQL server (``--pg-url``, default 127.0.0.1:5432), a ``redis-server``
on a free loopback port for ``redis``, moto's S3 server for ``objects`` (its bucket created as
``objects-init`` does), and the project's real test servers for the servers the demo collects
from: OpenSSH's ``sshd`` (SFTP only) for ``sftp``, with the user, password and directory of the
service's command (atmoz/sftp's ``user:password:::dir``), and Dovecot (IMAP) for ``mail``, with
the login and password of the Airflow connection that names host ``mail``; both on free loopback
ports with the throwaway configuration of ``tests/servers/sshd.py`` and ``tests/servers/dovecot.py``
(sshd needs root: it runs the sessions as that user, a system account created once).

What differs from a container is only what one machine forces, and it is all in :func:`plan`:
addresses (a service's host name becomes 127.0.0.1 and a free port), paths (a volume becomes a
folder: the code's bind mounts are the repository, named volumes and ./logs are under the
cluster folder), and the ports of two processes of a kind that would clash (``LOCAL_ONLY``).
``tests/test_compose.py`` checks that nothing else differs.

    scripts/cluster.sh [up] [--background] [--dir D] [--name N] [--set VAR=VALUE ...]
    scripts/cluster.sh down [--dir D] [--drop]
    scripts/cluster.sh plan     # the processes as JSON, started nowhere
"""

from __future__ import annotations

import argparse
import json
import os
import pwd
import re
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from urllib.request import urlopen

import yaml

REPO = Path(__file__).resolve().parents[1]
COMPOSE = REPO / "docker-compose.yaml"
BIN = Path(sys.executable).parent
PG_DEFAULT = "postgresql+psycopg2://postgres@127.0.0.1:5432/postgres"
# The image's own layout (Dockerfile): where its paths are in the repository.
IMAGE_PATHS = {"/opt/cdrflow": REPO, "/opt/airflow/dags": REPO / "dags", "/opt/airflow/plugins": REPO / "plugins"}
# Services replaced by a local equivalent (the rest are Airflow processes), and why.
LOCAL_EQUIVALENTS = {
    "postgres": "database {name}_airflow on the PostgreSQL server",
    "warehouse": "database {name}_warehouse on the PostgreSQL server",
    "redis": "redis-server on a free loopback port",
    "objects": "moto's S3 server on a free loopback port",
    "objects-init": "the bucket, created with boto3 once moto answers",
    "sftp": "OpenSSH's sshd serving SFTP on a free loopback port (tests/servers/sshd.py's configuration)",
    "mail": "Dovecot serving IMAP on a free loopback port (tests/servers/dovecot.py's configuration)",
}
# Marks the system user this script creates for sshd: a user of that name that lacks it is not ours
# (its password is never touched, and the SFTP server is not started).
SFTP_USER_MARK = "cdrflow make cluster SFTP user"
# Settings a process gets here and a container does not need (one machine, several processes).
LOCAL_ONLY = {
    "AIRFLOW_HOME",  # each service its own state folder
    "AIRFLOW__CORE__DAGS_FOLDER",  # the image's defaults under /opt/airflow, mapped
    "AIRFLOW__CORE__PLUGINS_FOLDER",
    "AIRFLOW__LOGGING__BASE_LOG_FOLDER",
    "AIRFLOW__API__HOST",  # loopback only
    "AIRFLOW__API__PORT",
    "AIRFLOW__SCHEDULER__SCHEDULER_HEALTH_CHECK_SERVER_PORT",
    "AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT",  # two workers on one machine
    "AIRFLOW__LOGGING__TRIGGER_LOG_SERVER_PORT",
    "CDRFLOW_HOSTNAME",  # the compose service's hostname, for the task instances
    "PATH",
}
CONTAINER_PORTS = {8080: "AIRFLOW__API__PORT", 8974: "AIRFLOW__SCHEDULER__SCHEDULER_HEALTH_CHECK_SERVER_PORT"}
_VAR = re.compile(r"\$(?:\$|\{(\w+)(?:(:?[-?])([^}]*))?\})")
_DB_URL = re.compile(r"(?P<scheme>[\w+]+)://[^@/\s\"]*@(?P<host>postgres|warehouse)(?::\d+)?/\w+")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def env_file() -> dict[str, str]:
    """The variables compose interpolates from: ``.env``, else ``.env.example`` (the trial defaults)."""
    path = REPO / ".env" if (REPO / ".env").exists() else REPO / ".env.example"
    pairs = (line.split("=", 1) for line in path.read_text().splitlines() if "=" in line and not line.startswith("#"))
    return {k.strip(): v.strip() for k, v in pairs}


def interpolate(value, variables: dict[str, str]):
    """Compose's ``${VAR}``, ``${VAR:-default}``, ``${VAR:?error}`` and ``$$``, through lists and maps."""
    if isinstance(value, dict):
        return {k: interpolate(v, variables) for k, v in value.items()}
    if isinstance(value, list):
        return [interpolate(v, variables) for v in value]
    if not isinstance(value, str):
        return value

    def sub(m: re.Match) -> str:
        if m.group(0) == "$$":
            return "$"
        name, op, arg = m.group(1), m.group(2), m.group(3)
        found = variables.get(name)
        if op in (":?", "?") and not found:
            raise SystemExit(f"cluster: {name} is not set: {arg}")
        if (op == ":-" and not found) or (op == "-" and found is None):
            return arg
        return found or ""

    return _VAR.sub(sub, value)


def load_compose(overrides: dict[str, str]) -> dict:
    raw = yaml.safe_load(COMPOSE.read_text())  # merge keys (<<: *airflow-common) resolved here
    return interpolate(raw, {**env_file(), **overrides})


def airflow_services(compose: dict) -> list[str]:
    """The services that run the cdrflow image, in the order ``depends_on`` allows."""
    image = compose["x-airflow-common"]["image"]
    names = [n for n, s in compose["services"].items() if s.get("image") == image]
    ordered: list[str] = []
    while len(ordered) < len(names):
        for n in names:
            deps = compose["services"][n].get("depends_on") or {}
            if n not in ordered and all(d in ordered or d not in names for d in deps):
                ordered.append(n)
    return ordered


def argv_of(command) -> list[str]:
    """The image's entrypoint: ``bash``/``python`` commands run as they are, anything else is
    ``airflow <command>``."""
    argv = shlex.split(command) if isinstance(command, str) else list(command)
    return argv if argv[0] in ("bash", "python") else ["airflow", *argv]


def path_map(service: dict, cluster_dir: Path) -> list[tuple[str, str]]:
    """(container path, local path), longest first: the image's layout, then the service's volumes."""
    mapping = {k: str(v) for k, v in IMAGE_PATHS.items()}
    for volume in service.get("volumes", []):
        source, target = volume.split(":")[:2]
        if source == "./logs" or not source.startswith((".", "/")):  # written to: under the cluster folder
            local = cluster_dir / ("logs" if source == "./logs" else f"volumes/{source}")
        else:
            local = (REPO / source).resolve()
        mapping[target] = str(local)
    return sorted(mapping.items(), key=lambda kv: -len(kv[0]))


def localise(value: str, paths: list[tuple[str, str]], addresses: dict[str, str], databases: dict[str, str]) -> str:
    """A compose value as this machine needs it: database URLs, service addresses (in URLs and in
    connection JSON's ``"host": ..., "port": ...``), paths."""
    value = _DB_URL.sub(lambda m: f"{m.group('scheme')}://{databases[m.group('host')]}", value)
    for service, address in addresses.items():
        value = re.sub(rf"//{re.escape(service)}(?=[:/])(:\d+)?", "//" + address, value)
        host, port = address.split(":")
        value = re.sub(rf'"host": "{re.escape(service)}"(, "port": \d+)?', f'"host": "{host}", "port": {port}', value)
    for container, local in paths:
        value = re.sub(rf"(?<![\w/]){re.escape(container)}(?=$|[/\"'])", local, value)
    return value


def plan(compose: dict, cluster_dir: Path, ports: dict[str, int], databases: dict[str, str]) -> list[dict]:
    """One entry per Airflow service: name, argv, env (the compose env made local plus
    LOCAL_ONLY), what it waits for."""
    addresses = {
        "redis": f"127.0.0.1:{ports['redis']}",
        "objects": f"127.0.0.1:{ports['objects']}",
        "airflow-apiserver": f"127.0.0.1:{ports['api']}",
        "sftp": f"127.0.0.1:{ports['sftp']}",
        "mail": f"127.0.0.1:{ports['mail']}",
    }
    out = []
    for name in airflow_services(compose):
        service = compose["services"][name]
        paths = path_map(service, cluster_dir)
        env = {k: localise(str(v), paths, addresses, databases) for k, v in service.get("environment", {}).items()}
        home = cluster_dir / name
        env.update(
            AIRFLOW_HOME=str(home),
            AIRFLOW__CORE__DAGS_FOLDER=localise("/opt/airflow/dags", paths, {}, {}),
            AIRFLOW__CORE__PLUGINS_FOLDER=localise("/opt/airflow/plugins", paths, {}, {}),
            AIRFLOW__LOGGING__BASE_LOG_FOLDER=localise("/opt/airflow/logs", paths, {}, {}),
            AIRFLOW__API__HOST="127.0.0.1",
            AIRFLOW__API__PORT=str(ports["api"]),
            AIRFLOW__SCHEDULER__SCHEDULER_HEALTH_CHECK_SERVER_PORT=str(ports["scheduler_health"]),
            AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT=str(ports[f"logs:{name}"]),
            AIRFLOW__LOGGING__TRIGGER_LOG_SERVER_PORT=str(ports["trigger_logs"]),
            PATH=f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}",
        )
        if service.get("hostname"):
            env["CDRFLOW_HOSTNAME"] = service["hostname"]
        health = ((service.get("healthcheck") or {}).get("test")) or []
        url = next((t for t in health if str(t).startswith("http://localhost:")), None)
        if url:
            port = int(url.split(":")[2].split("/")[0])
            url = url.replace(f"localhost:{port}", f"127.0.0.1:{env[CONTAINER_PORTS[port]]}")
        out.append(
            {
                "name": name,
                "argv": argv_of(service["command"]),
                "env": env,
                "home": str(home),
                "health_url": url,
                "depends_on": {k: v.get("condition") for k, v in (service.get("depends_on") or {}).items()},
            }
        )
    return out


def allocate_ports(compose: dict) -> dict[str, int]:
    ports = {k: free_port() for k in ("redis", "objects", "api", "scheduler_health", "trigger_logs", "sftp", "mail")}
    ports.update({f"logs:{n}": free_port() for n in airflow_services(compose)})
    return ports


def databases_for(pg_url: str, name: str) -> dict[str, str]:
    """The local URL (after ``scheme://``) of the ``postgres`` and ``warehouse`` services' databases."""
    from sqlalchemy.engine import make_url

    server = make_url(pg_url)
    return {
        service: server.set(database=f"{name}_{suffix}").render_as_string(hide_password=False).split("://", 1)[1]
        for service, suffix in (("postgres", "airflow"), ("warehouse", "warehouse"))
    }


def create_databases(pg_url: str, names: list[str], drop: bool = False) -> None:
    import psycopg2
    from psycopg2 import sql
    from sqlalchemy.engine import make_url

    url = make_url(pg_url)
    conn = psycopg2.connect(
        host=url.host, port=url.port or 5432, user=url.username, password=url.password, dbname=url.database
    )
    conn.autocommit = True
    with conn.cursor() as cur:
        for db in names:
            cur.execute("SELECT 1 FROM pg_database WHERE datname = %s", (db,))
            exists = cur.fetchone() is not None
            if drop and exists:
                cur.execute(sql.SQL("DROP DATABASE {} WITH (FORCE)").format(sql.Identifier(db)))
            elif not drop and not exists:
                cur.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(db)))
    conn.close()


def spawn(argv: list[str], env: dict[str, str], log: Path, cwd: Path = REPO) -> subprocess.Popen:
    """A process in a session of its own (so that stopping it stops the children it forked)."""
    log.parent.mkdir(parents=True, exist_ok=True)
    if argv[0] in ("airflow", "python"):
        argv = [str(BIN / argv[0]), *argv[1:]]
    with log.open("ab") as out:
        return subprocess.Popen(argv, env=env, stdout=out, stderr=subprocess.STDOUT, cwd=cwd, start_new_session=True)


def wait_for(check, what: str, timeout: float, process: subprocess.Popen | None = None, log: Path | None = None):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            tail = log.read_text(errors="replace")[-3000:] if log else ""
            raise SystemExit(f"cluster: {what} exited ({process.returncode}) before it was ready:\n{tail}")
        try:
            if check():
                return
        except Exception:
            pass
        time.sleep(0.5)
    raise SystemExit(f"cluster: {what} not ready within {timeout:.0f}s")


def base_env() -> dict[str, str]:
    """The caller's environment without any Airflow or cdrflow setting: a container starts clean."""
    return {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW", "CDRFLOW_", "_AIRFLOW"))}


def start_infrastructure(compose: dict, args, ports: dict[str, int], state: dict) -> None:
    d = Path(args.dir)
    redis_dir = d / "redis"
    redis_dir.mkdir(parents=True, exist_ok=True)
    redis_argv = ["redis-server", *shlex.split(compose["services"]["redis"]["command"])[1:]]  # --appendonly yes
    redis_argv += ["--port", str(ports["redis"]), "--bind", "127.0.0.1", "--dir", str(redis_dir)]
    moto_argv = [str(BIN / "moto_server"), "-H", "127.0.0.1", "-p", str(ports["objects"])]
    for name, argv in (("redis", redis_argv), ("objects", moto_argv)):
        proc = spawn(argv, base_env(), d / f"{name}.log")
        state["processes"][name] = {"pid": proc.pid, "argv": argv, "log": str(d / f"{name}.log")}
    wait_for(lambda: socket.create_connection(("127.0.0.1", ports["redis"]), 1).close() or True, "redis", 15)
    init = compose["services"]["objects-init"]["environment"]
    import boto3

    s3 = boto3.client(
        "s3",
        endpoint_url=f"http://127.0.0.1:{ports['objects']}",
        aws_access_key_id=init["OBJECTS_USER"],
        aws_secret_access_key=init["OBJECTS_PASSWORD"],
        region_name="us-east-1",
    )
    wait_for(lambda: s3.list_buckets() is not None, "moto's S3 server", 30)
    s3.create_bucket(Bucket=init["CDRFLOW_BUCKET"])
    create_databases(args.pg_url, [f"{args.name}_airflow", f"{args.name}_warehouse"])
    start_sftp(compose, ports["sftp"], d, state)
    start_mail(compose, ports["mail"], d, state)


# --- the servers the carriers are collected from: the project's real test servers ---


def _test_servers():
    """tests/servers/sshd.py and tests/servers/dovecot.py: the configuration the collectors' own
    tests run their servers with (one place for it)."""
    if str(REPO) not in sys.path:
        sys.path.insert(0, str(REPO))
    from tests.servers import dovecot, sshd

    return sshd, dovecot


def _conn_of(compose: dict, service: str) -> tuple[str, dict]:
    """(conn id, connection) of the Airflow connection (``AIRFLOW_CONN_<ID>`` JSON) whose host is ``service``."""
    for key, value in compose["x-airflow-common"]["environment"].items():
        if key.startswith("AIRFLOW_CONN_") and str(value).lstrip().startswith("{"):
            conn = json.loads(value)
            if conn.get("host") == service:
                return key.removeprefix("AIRFLOW_CONN_").lower(), conn
    raise SystemExit(f"cluster: no Airflow connection (AIRFLOW_CONN_*) names the {service} service")


def sftp_account(compose: dict) -> dict:
    """The SFTP user of the ``sftp`` service's command (atmoz/sftp: ``user:password:uid:gid:dir,dir``)
    and the connection the workers use for it."""
    user, password, *rest = str(compose["services"]["sftp"]["command"]).split(":")
    dirs = rest[2] if len(rest) > 2 else ""
    conn_id, _conn = _conn_of(compose, "sftp")
    return {"user": user, "password": password, "directories": [x for x in dirs.split(",") if x], "conn_id": conn_id}


def mail_account(compose: dict) -> dict:
    """The IMAP user: the login and password of the workers' connection to the ``mail`` service."""
    conn_id, conn = _conn_of(compose, "mail")
    return {"user": conn["login"], "password": conn["password"], "conn_id": conn_id}


def _test_server_call(what: str, call, *args):
    """A helper of tests/servers/*.py, whose failures are pytest's: one line here."""
    import pytest

    try:
        return call(*args)
    except pytest.fail.Exception as exc:
        raise SystemExit(f"cluster: {what}: {exc}") from None


def _greets(port: int, prefix: bytes) -> bool:
    with socket.create_connection(("127.0.0.1", port), timeout=1) as s:
        return s.recv(200).startswith(prefix)


def _sftp_user(user: str, password: str) -> str | None:
    """The system user sshd runs ``user``'s sessions as: created once (marked as this script's),
    its password set; None when it can be, else why not."""
    try:
        entry = pwd.getpwnam(user)
    except KeyError:
        done = subprocess.run(
            ["useradd", "--system", "--no-create-home", "--home-dir", "/nonexistent", "--shell", "/usr/sbin/nologin"]
            + ["--comment", SFTP_USER_MARK, user],
            capture_output=True,
            text=True,
            timeout=30,
        )
        if done.returncode != 0:
            return f"cannot create the system user {user}: {done.stderr.strip()}"
        entry = pwd.getpwnam(user)
    if entry.pw_gecos != SFTP_USER_MARK:
        return f"the system user {user} exists and is not this script's: its password is left alone"
    done = subprocess.run(["chpasswd"], input=f"{user}:{password}\n", capture_output=True, text=True, timeout=30)
    return f"cannot set the password of {user}: {done.stderr.strip()}" if done.returncode else None


def start_sftp(compose: dict, port: int, d: Path, state: dict) -> None:
    """``sftp``: OpenSSH's sshd, SFTP only, serving the command's directories (below a folder of
    its own, where sessions start: a relative directory in a carrier's source is the same path on
    atmoz/sftp) to the command's user with its password."""
    sshd, _ = _test_servers()
    account = sftp_account(compose)
    why = None
    if not os.access(sshd.SSHD, os.X_OK):
        why = f"OpenSSH's server is not installed: {sshd.INSTALL_HINT}"
    elif os.geteuid() != 0:
        why = "sshd runs each SFTP session as its system user: start the cluster as root for it"
    else:
        why = _sftp_user(account["user"], account["password"])
    if why:
        state["skipped"]["sftp"] = why
        return
    # not under the cluster folder: its parents may be closed (0700) to the session's user
    base = Path(tempfile.mkdtemp(prefix="cdrflow-cluster-sftp-"))
    state["temp_dirs"].append(str(base))
    base.chmod(0o755)
    etc, root = base / "etc", base / "root"
    etc.mkdir()
    root.mkdir()
    _test_server_call("sftp", sshd._grant, root, pwd.getpwnam(account["user"]).pw_uid)
    for directory in account["directories"]:
        (root / directory).mkdir(parents=True, exist_ok=True)  # the default ACL lets the user in
    keygen = ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(etc / "ssh_host_ed25519_key")]
    subprocess.run(keygen, check=True, capture_output=True, timeout=30)
    (etc / "authorized_keys").write_text("")  # password logins, as the compose service's
    Path("/run/sshd").mkdir(mode=0o755, exist_ok=True)  # sshd's privilege separation directory
    config = etc / "sshd_config"
    config.write_text(sshd.CONFIG.format(port=port, etc=etc, root=root, user=account["user"]))
    argv = [sshd.SSHD, "-D", "-e", "-f", str(config)]
    log = d / "sftp.log"
    proc = spawn(argv, base_env(), log)
    state["processes"]["sftp"] = {"pid": proc.pid, "argv": argv, "log": str(log)}
    wait_for(lambda: _greets(port, b"SSH-"), "sftp (sshd)", 15, proc, log)
    state["servers"]["sftp"] = {"host": "127.0.0.1", "port": port, "root": str(root), **account}


def start_mail(compose: dict, port: int, d: Path, state: dict) -> None:
    """``mail``: Dovecot, plain IMAP, one user (the connection's login and password) in a passwd file."""
    _, dovecot = _test_servers()
    binary = shutil.which("dovecot") or "/usr/sbin/dovecot"
    if not os.access(binary, os.X_OK):
        state["skipped"]["mail"] = f"Dovecot is not installed: {dovecot.INSTALL_HINT}"
        return
    account = mail_account(compose)
    workdir = Path(tempfile.mkdtemp(prefix="cdrflow-cluster-mail-"))  # the mail user must reach it
    state["temp_dirs"].append(str(workdir))
    workdir.chmod(0o755)
    ident = _test_server_call("mail", dovecot._identity)
    mail_root = workdir / "mail"
    mail_root.mkdir()
    os.chown(mail_root, ident["uid"], ident["gid"])
    passwd = workdir / "passwd"
    passwd.write_text(f"{account['user']}:{{PLAIN}}{account['password']}\n")
    passwd.chmod(0o644)  # read by Dovecot's auth process (its own user)
    (workdir / "state").mkdir()
    config = workdir / "dovecot.conf"
    config.write_text(
        dovecot.CONFIG.format(
            base_dir=workdir / "run",
            state_dir=workdir / "state",
            log_path=d / "mail-dovecot.log",
            passwd=passwd,
            mail_root=mail_root,
            port=port,
            **ident,
        )
    )
    argv = [binary, "-F", "-c", str(config)]
    log = d / "mail.log"
    proc = spawn(argv, base_env(), log)
    state["processes"]["mail"] = {"pid": proc.pid, "argv": argv, "log": str(log)}
    wait_for(lambda: _greets(port, b"* OK"), "mail (dovecot)", 15, proc, log)
    state["servers"]["mail"] = {"host": "127.0.0.1", "port": port, **account}


def up(args) -> dict:
    overrides = dict(kv.split("=", 1) for kv in args.set)
    compose = load_compose(overrides)
    d = Path(args.dir).resolve()
    args.dir = str(d)
    ports = allocate_ports(compose)
    databases = databases_for(args.pg_url, args.name)
    processes = plan(compose, d, ports, databases)
    state: dict = {"dir": str(d), "name": args.name, "pg_url": args.pg_url, "ports": ports, "processes": {}}
    state.update(servers={}, skipped={}, temp_dirs=[])
    (d / "cluster.json").parent.mkdir(parents=True, exist_ok=True)
    try:
        start_infrastructure(compose, args, ports, state)
        healthy: set[str] = set()
        by_name = {p["name"]: p for p in processes}
        for p in processes:
            for dep, condition in p["depends_on"].items():  # the infrastructure is ready by now
                if dep in by_name and condition == "service_healthy" and dep not in healthy:
                    url, proc = by_name[dep]["health_url"], state["processes"][dep]["proc"]
                    log = Path(state["processes"][dep]["log"])
                    wait_for(lambda url=url: urlopen(url, timeout=2).status == 200, dep, 180, proc, log)
                    healthy.add(dep)
            Path(p["home"]).mkdir(parents=True, exist_ok=True)
            for _container, local in path_map(compose["services"][p["name"]], d):
                if local.startswith(str(d)):
                    Path(local).mkdir(parents=True, exist_ok=True)
            log = d / f"{p['name']}.log"
            env = {**base_env(), **p["env"]}
            proc = spawn(p["argv"], env, log)
            state["processes"][p["name"]] = {"pid": proc.pid, "argv": p["argv"], "log": str(log), "proc": proc}
            if p["name"] == "airflow-init":  # service_completed_successfully for everyone after it
                if proc.wait(timeout=600) != 0:
                    raise SystemExit(f"cluster: airflow-init failed:\n{log.read_text(errors='replace')[-3000:]}")
    except BaseException:
        down_state(state, drop=False)
        raise
    finally:
        for info in state["processes"].values():
            info.pop("proc", None)
        state["api"] = f"http://127.0.0.1:{ports['api']}"
        state["workers"] = {p["name"]: p["env"].get("CDRFLOW_HOSTNAME") for p in processes if "worker" in p["name"]}
        state["env"] = {p["name"]: p["env"] for p in processes}
        (d / "cluster.json").write_text(json.dumps(state, indent=1))
    return state


def stop_pids(pids: list[int], grace: float) -> None:
    """SIGTERM the process groups of ``pids`` (processes this script started) together, SIGKILL
    what is left after ``grace`` seconds."""

    def signal_group(pid: int, sig: int) -> bool:
        try:
            os.killpg(pid, sig)
            return True
        except ProcessLookupError:
            return False

    for pid in pids:
        signal_group(pid, signal.SIGTERM)
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline and any(signal_group(p, 0) for p in pids):
        time.sleep(0.2)
    for pid in pids:
        signal_group(pid, signal.SIGKILL)


def down_state(state: dict, drop: bool, grace: float = 20.0) -> None:
    """Stop every process: Airflow's first (SIGTERM; Celery's warm shutdown lets running tasks
    finish for up to ``grace`` seconds), then Redis and moto; ``drop``: the two databases too."""
    procs = state["processes"]
    stop_pids([i["pid"] for n, i in procs.items() if n not in LOCAL_EQUIVALENTS and n != "airflow-init"], grace)
    stop_pids([i["pid"] for n, i in procs.items() if n in LOCAL_EQUIVALENTS], min(grace, 3.0))
    for folder in state.get("temp_dirs", []):  # the SFTP and mail servers' throwaway folders
        shutil.rmtree(folder, ignore_errors=True)
    if drop:
        create_databases(state["pg_url"], [f"{state['name']}_airflow", f"{state['name']}_warehouse"], drop=True)


def describe(state: dict) -> str:
    d = Path(state["dir"])
    lines = [
        f"cdrflow cluster {state['name']} is up (folder {d}):",
        f"  Airflow UI and API   {state['api']}  (user admin, password in .env / .env.example: AIRFLOW_ADMIN_PASSWORD)",
        f"  seed HTTP APIs       {state['api']}/cdr",
        f"  warehouse            {databases_for(state['pg_url'], state['name'])['warehouse']}",
        f"  broker (Redis)       127.0.0.1:{state['ports']['redis']}",
        f"  raw store (S3, moto) http://127.0.0.1:{state['ports']['objects']}",
        f"  logs                 {d}/<service>.log, task logs in {d}/logs",
        "  workers              " + ", ".join(f"{k} ({v})" for k, v in state["workers"].items()),
    ]
    for name, what in (("sftp", "SFTP (sshd)"), ("mail", "IMAP (Dovecot)")):
        if server := state.get("servers", {}).get(name):
            where = f" in {server['root']}" if "root" in server else ""
            lines.append(
                f"  {what:<20} 127.0.0.1:{server['port']}  (user {server['user']}{where}; "
                f"connection {server['conn_id']})"
            )
        elif why := state.get("skipped", {}).get(name):
            lines.append(f"  {what:<20} not started: {why}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("action", nargs="?", default="up", choices=["up", "down", "plan"])
    parser.add_argument("--dir", default=str(REPO / ".state" / "cluster"), help="the cluster's folder")
    parser.add_argument("--name", default="cdrflow_cluster", help="prefix of its two databases")
    parser.add_argument("--pg-url", default=os.environ.get("CDRFLOW_CLUSTER_PG_URL", PG_DEFAULT))
    parser.add_argument("--set", action="append", default=[], metavar="VAR=VALUE", help="over .env")
    parser.add_argument("--background", action="store_true", help="start and return (stop: down)")
    parser.add_argument("--drop", action="store_true", help="down: drop the two databases too")
    parser.add_argument("--grace", type=float, default=20.0, help="down: seconds before SIGKILL")
    args = parser.parse_args(argv)
    if args.action == "plan":
        compose = load_compose(dict(kv.split("=", 1) for kv in args.set))
        ports = allocate_ports(compose)
        print(json.dumps(plan(compose, Path(args.dir), ports, databases_for(args.pg_url, args.name)), indent=1))
        return 0
    if args.action == "down":
        down_state(json.loads((Path(args.dir) / "cluster.json").read_text()), args.drop, args.grace)
        return 0
    state = up(args)
    print(describe(state), flush=True)
    if args.background:
        return 0
    print("Ctrl-C stops it.", flush=True)
    stopping: list[int] = []
    for sig in (signal.SIGINT, signal.SIGTERM):  # SIGINT explicitly: a background job ignores it
        signal.signal(sig, lambda signum, _frame: stopping.append(signum))
    while not stopping:
        time.sleep(1)
    print("stopping the cluster...", flush=True)
    down_state(state, drop=False)
    return 0


if __name__ == "__main__":
    sys.exit(main())
