"""A complete, private copy of the system for fault and cluster tests: its own MariaDB, Redis and
broker (started by `scripts/devservices.py` under another RUN_DIR and other ports) and the real
processes of the Procfile running against them, one copy of each or several (`copies=2`: the
cluster of issue 10). Tests stop, restart and kill -9 pieces of THIS copy only; the shared services
other engineers use (3307/6380/9092) are never touched.

Everything here talks to the copy from the outside, as an operator would: HTTP to gunicorn, SQL
through a fresh connection per query (so a restarted server is simply reconnected to), and
`manage.py` subprocesses with the copy's environment (the auditor, token issuing).
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import MySQLdb
import requests

ROOT = Path(__file__).resolve().parents[2]
RUN_DIR = ".run-faults"
DB_PORT, REDIS_PORT, KAFKA_PORT = 3327, 6400, 9102
COPY_NAMES = "abcdefgh"
TICKS = os.sysconf("SC_CLK_TCK")  # process names of a cluster: web_a, web_b, ...

# Our configuration variables: none may leak from the test run (which points at the shared services).
OURS = (
    *("DB_", "REDIS_", "KAFKA_", "CELERY_", "DJANGO_", "OUTBOX_", "THROTTLE_", "ORDER_", "QUEUE_", "SSE_", "JWT_"),
    "IDEMPOTENCY_",
)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def stack_env(
    run_dir: str = RUN_DIR,
    db_port: int = DB_PORT,
    redis_port: int = REDIS_PORT,
    kafka_port: int = KAFKA_PORT,
    **extra: str,
) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(OURS) and k not in ("RUN_DIR", "LOCAL_SERVICES")}
    env.update(
        RUN_DIR=run_dir,
        DJANGO_ENV="local",
        DB_PORT=str(db_port),
        DB_NAME="shop",
        REDIS_URL=f"redis://127.0.0.1:{redis_port}/0",
        KAFKA_BOOTSTRAP_SERVERS=f"127.0.0.1:{kafka_port}",
        # Short Kafka group timings: a (re)joining consumer gets its partitions in about a second.
        KAFKA_SESSION_TIMEOUT_MS="2000",
        KAFKA_HEARTBEAT_INTERVAL_MS="500",
        # The fallback applies what the relay/consumer path has not after 2 s (when it is run).
        OUTBOX_FALLBACK_AFTER_SECONDS="2",
        # The relay gives up on unacknowledged messages after this long and resumes from its checkpoint:
        # after a tansu restart nothing produced before it is ever acknowledged (30 s by default).
        OUTBOX_RELAY_DELIVERY_TIMEOUT_MS="5000",
        # A request whose web worker was killed leaves its Idempotency-Key claimed: a retry may take
        # it over after this long (60 s by default), so the clients' retries finish in seconds.
        IDEMPOTENCY_STALE_SECONDS="3",
        DB_CONN_MAX_AGE="60",
        LOG_LEVEL="INFO",
        PYTHONUNBUFFERED="1",
    )
    env.update(extra)
    return env


@dataclass
class Process:
    name: str
    argv: list[str]
    proc: subprocess.Popen | None = None

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc else None

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None


@dataclass
class Stack:
    run_dir: str = RUN_DIR
    db_port: int = DB_PORT
    redis_port: int = REDIS_PORT
    kafka_port: int = KAFKA_PORT
    copies: int = 1  # of every process but beat (which is never more than one)
    web_workers: int = 2  # gunicorn workers per web process
    sse: bool = False  # start the SSE server(s) and Celery beat too (the fault tests do without)
    settings: dict[str, str] = field(default_factory=dict)  # environment overrides for every process
    web_ports: list[int] = field(default_factory=list)
    sse_ports: list[int] = field(default_factory=list)
    processes: dict[str, Process] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.web_ports = self.web_ports or [free_port() for _ in range(self.copies)]
        self.sse_ports = self.sse_ports or [free_port() for _ in range(self.copies)]

    @property
    def root(self) -> Path:
        return ROOT / self.run_dir

    @property
    def log_dir(self) -> Path:
        return self.root / "logs"

    @property
    def web_port(self) -> int:
        return self.web_ports[0]

    def env(self, **extra: str) -> dict[str, str]:
        return stack_env(self.run_dir, self.db_port, self.redis_port, self.kafka_port, **{**self.settings, **extra})

    # --- services --------------------------------------------------------------------------

    def services(self, command: str, only: str = "mariadb,redis,kafka") -> float:
        """`devservices.py up|down` for some of the copy's services; returns the seconds it took."""
        started = time.monotonic()
        result = subprocess.run(
            [sys.executable, "scripts/devservices.py", command],
            cwd=ROOT,
            env=self.env(LOCAL_SERVICES=only),
            capture_output=True,
            text=True,
            timeout=120,
        )
        if result.returncode != 0:
            raise RuntimeError(f"devservices {command} ({only}) failed:\n{result.stdout}\n{result.stderr}")
        return time.monotonic() - started

    def manage(self, *args: str, check: bool = True, timeout: float = 120) -> subprocess.CompletedProcess[str]:
        result = subprocess.run(
            [sys.executable, "manage.py", *args],
            cwd=ROOT,
            env=self.env(),
            capture_output=True,
            text=True,
            timeout=timeout,
        )
        if check and result.returncode != 0:
            raise RuntimeError(f"manage.py {' '.join(args)} failed:\n{result.stdout}\n{result.stderr}")
        return result

    def build(self, users: int = 50) -> None:
        """A fresh copy: stop anything a crashed run left, wipe its folder, start, migrate, seed."""
        self.kill_leftovers()
        with contextlib.suppress(RuntimeError):
            self.services("down")
        shutil.rmtree(self.root, ignore_errors=True)
        self.services("up")
        self.manage("migrate", "--noinput", "-v", "0")
        self.manage("seed_demo", "--users", str(users), "--no-sales")
        self.log_dir.mkdir(parents=True, exist_ok=True)

    # --- processes (the Procfile's commands) -------------------------------------------------

    def define(self) -> None:
        """The Procfile's processes, `copies` of each (named web_a, web_b, ... when more than one),
        and with `sse` the SSE servers and the one Celery beat."""
        venv = Path(sys.executable).parent
        manage = [sys.executable, "manage.py"]

        def web(port: int) -> list[str]:
            return [
                *(str(venv / "gunicorn"), "config.wsgi:application", "-k", "gthread"),
                *("-w", str(self.web_workers), "--threads", "4", "--keep-alive", "30"),
                *("-b", f"127.0.0.1:{port}", "--log-level", "warning", "--graceful-timeout", "2"),
            ]

        def sse(port: int) -> list[str]:
            return [str(venv / "uvicorn"), "config.asgi:application", "--port", str(port), "--log-level", "warning"]

        def worker(node: str) -> list[str]:
            celery = [str(venv / "celery"), "-A", "config", "worker", "--concurrency=2", "--without-gossip"]
            return [*celery, "--without-mingle", "-n", f"{node}@%h", "-l", "info"]

        self.processes = {}
        for index in range(self.copies):
            suffix = f"_{COPY_NAMES[index]}" if self.copies > 1 else ""
            kinds = {
                "web": web(self.web_ports[index]),
                "sse": sse(self.sse_ports[index]) if self.sse else None,
                "worker": worker(f"{self.run_dir.strip('.')}{suffix}"),
                "checkout": [*manage, "run_consumer", "checkout"],
                "relay": [*manage, "outbox_relay"],
                "outbox": [*manage, "run_consumer", "outbox"],
            }
            for kind, argv in kinds.items():
                if argv:
                    self.processes[f"{kind}{suffix}"] = Process(f"{kind}{suffix}", argv)
        if self.sse:
            schedule = str(self.root / "celerybeat-schedule")
            beat = [str(venv / "celery"), "-A", "config", "beat", "-l", "info", "--schedule", schedule, "--pidfile="]
            self.processes["beat"] = Process("beat", beat)

    def named(self, kind: str) -> list[str]:
        """The names of every copy of one kind of process: 'relay' -> ['relay_a', 'relay_b']."""
        return [name for name in self.processes if name == kind or name.startswith(f"{kind}_")]

    @property
    def pid_file(self) -> Path:
        return self.root / "processes.pids"

    def kill_leftovers(self) -> None:
        """Process groups a previous, interrupted run started (by the pids it recorded, never by name)."""
        with contextlib.suppress(OSError):
            for line in self.pid_file.read_text().split():
                pgid = int(line)
                with contextlib.suppress(OSError):
                    if f"\0RUN_DIR={self.run_dir}\0".encode() in b"\0" + Path(f"/proc/{pgid}/environ").read_bytes():
                        os.killpg(pgid, signal.SIGKILL)

    def start(self, name: str) -> Process:
        process = self.processes[name]
        assert not process.alive(), f"{name} runs already"
        with (self.log_dir / f"{name}.log").open("ab") as log:
            process.proc = subprocess.Popen(
                process.argv,
                cwd=ROOT,
                env=self.env(),
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # its own process group: we can signal it and its children
            )
        with self.pid_file.open("a") as pids:
            pids.write(f"{process.pid}\n")
        return process

    def start_all(self) -> None:
        self.define()
        for name in self.processes:
            self.start(name)
        self.wait(self.ready, timeout=60, what="/readyz 200")
        self.wait(lambda: self.relay_active(), timeout=30, what="the relay to hold its lock")

    def kill9(self, name: str) -> None:
        """kill -9 of the process and its children (its process group), as when its container dies:
        no signal handler, no `finally`, no flush."""
        process = self.processes[name]
        assert process.alive(), f"{name} is not running:\n{self.log(name)}"
        os.killpg(process.pid, signal.SIGKILL)
        process.proc.wait(10)

    def restart(self, name: str) -> Process:
        """What a supervisor does after a crash."""
        return self.start(name)

    def stop(self, name: str) -> None:
        process = self.processes.get(name)
        if process is None or process.proc is None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGTERM)  # the group: gunicorn/celery children too
        try:
            process.proc.wait(15)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            process.proc.wait(5)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)  # anything orphaned inside the group (kill -9 leftovers)

    def stop_all(self) -> None:
        for name in reversed(list(self.processes)):
            self.stop(name)

    def pids(self) -> dict[str, int | None]:
        return {name: p.pid if p.alive() else None for name, p in self.processes.items()}

    def children(self, name: str) -> list[int]:
        """Child pids of a process (gunicorn workers, celery pool processes)."""
        path = Path(f"/proc/{self.processes[name].pid}/task/{self.processes[name].pid}/children")
        with contextlib.suppress(OSError):
            return [int(pid) for pid in path.read_text().split()]
        return []

    def cpu_seconds(self) -> dict[str, float]:
        """CPU time (user + system) so far of each process with everything in its process group
        (gunicorn and Celery children included), and of the copy's MariaDB, Redis and broker."""
        groups = {p.pid: name for name, p in self.processes.items() if p.alive()}
        services = {}
        for service, pid_file in (
            ("mariadb", "mariadb/mariadbd.pid"),
            ("redis", "redis/redis.pid"),
            ("kafka", "tansu/tansu.pid"),
        ):
            with contextlib.suppress(OSError, ValueError):
                services[int((self.root / pid_file).read_text().split()[0])] = service
        used: dict[str, float] = dict.fromkeys([*groups.values(), *services.values()], 0.0)
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit():
                continue
            with contextlib.suppress(OSError):
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
                pid, group = int(entry.name), int(fields[2])  # fields after "(comm)": state, ppid, pgrp, ...
                name = services.get(pid) or groups.get(group)
                if name:
                    used[name] += (int(fields[11]) + int(fields[12]) + int(fields[13]) + int(fields[14])) / TICKS
        return used

    def log(self, name: str, tail: int = 40) -> str:
        """The last lines of a process's log, without librdkafka's connection chatter."""
        path = self.log_dir / f"{name}.log"
        lines = path.read_text(errors="replace").splitlines() if path.exists() else []
        noise = ("_TRANSPORT", "_ALL_BROKERS_DOWN", "Connection refused")
        lines = [line for line in lines if not line.startswith("%") and not any(n in line for n in noise)]
        return "\n".join(lines[-tail:])

    def dead(self) -> dict[str, int | None]:
        """Processes that exited, with their exit codes (negative: killed by that signal)."""
        return {name: p.proc.returncode for name, p in self.processes.items() if p.proc and not p.alive()}

    def logs(self) -> str:
        return "\n".join(f"--- {name} ---\n{self.log(name)}" for name in self.processes)

    # --- looking at it -----------------------------------------------------------------------

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.web_port}"

    @property
    def urls(self) -> list[str]:
        """Every API instance's base URL (a load spreads over them)."""
        return [f"http://127.0.0.1:{port}" for port in self.web_ports]

    @property
    def sse_urls(self) -> list[str]:
        return [f"http://127.0.0.1:{port}" for port in self.sse_ports] if self.sse else []

    def ready(self) -> bool:
        try:
            return all(requests.get(f"{url}/readyz", timeout=3).status_code == 200 for url in self.urls)
        except requests.RequestException:
            return False

    def sql(self, query: str, params: tuple = ()) -> list[tuple]:
        """One query on a fresh connection (the server may have restarted since the last one)."""
        connection = MySQLdb.connect(
            host="127.0.0.1", port=self.db_port, user="shop", password="shop", database="shop", connect_timeout=3
        )
        try:
            cursor = connection.cursor()
            cursor.execute(query, params)
            rows = list(cursor.fetchall())
            connection.commit()
            return rows
        finally:
            connection.close()

    def value(self, query: str, params: tuple = ()) -> Any:
        return self.sql(query, params)[0][0]

    def active_relay(self) -> str | None:
        """The relay that holds the single-relay lock now: the live one whose log last said "active"."""
        latest: tuple[int, str] | None = None
        for name in self.named("relay"):
            if not self.processes[name].alive():
                continue
            lines = (self.log_dir / f"{name}.log").read_text(errors="replace").splitlines()
            marks = [i for i, line in enumerate(lines) if "outbox relay: active" in line]
            standby = [i for i, line in enumerate(lines) if "standing by" in line or "back to standby" in line]
            if marks and (not standby or marks[-1] > standby[-1]):
                latest = max(latest or (-1, ""), (os.stat(self.log_dir / f"{name}.log").st_mtime_ns, name))
        return latest[1] if latest else None

    def relay_active(self) -> bool:
        with contextlib.suppress(MySQLdb.Error):
            return self.value("SELECT IS_USED_LOCK('outbox_relay:shop')") is not None
        return False

    def audit(self) -> str:
        """`manage.py audit_invariants` against the copy: fails the test on any breach."""
        result = self.manage("audit_invariants", check=False)
        assert result.returncode == 0, f"invariants broken:\n{result.stdout}\n{result.stderr}"
        return result.stdout

    def tokens(self, users: str) -> dict[int, str]:
        out = self.root / "tokens.json"
        self.manage("issue_tokens", "--users", users, "--out", str(out))
        return {int(k): v for k, v in json.loads(out.read_text()).items()}

    def celery_call(self, task: str) -> None:
        """Send a task through the copy's broker (Redis) for the worker to run."""
        result = subprocess.run(
            [str(Path(sys.executable).parent / "celery"), "-A", "config", "call", task],
            cwd=ROOT,
            env=self.env(),
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert result.returncode == 0, result.stdout + result.stderr

    def wait(self, predicate: Callable[[], Any], *, timeout: float, what: str, interval: float = 0.2) -> Any:
        deadline = time.monotonic() + timeout
        while True:
            value = predicate()
            if value:
                return value
            if time.monotonic() > deadline:
                dead = self.dead()
                logs = "\n".join(f"--- {name} ---\n{self.log(name)}" for name in dead)
                raise AssertionError(
                    f"timed out after {timeout} s waiting for {what}; dead processes (exit codes): {dead}\n{logs}"
                )
            time.sleep(interval)


@contextlib.contextmanager
def exclusive(run_dir: str = RUN_DIR, timeout: float = 900) -> Iterator[None]:
    """One run per copy at a time on this machine: the copy's ports and folder are fixed."""
    digest = hashlib.sha1(f"{ROOT}/{run_dir}".encode()).hexdigest()[:12]
    lock_path = Path(tempfile.gettempdir()) / f"faults-{digest}.lock"
    with lock_path.open("w") as lock:
        deadline = time.monotonic() + timeout
        while True:
            try:
                fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() > deadline:
                    raise TimeoutError(f"another fault run holds {lock_path}") from None
                time.sleep(1)
        yield


@contextlib.contextmanager
def running_stack(**options: Any) -> Iterator[Stack]:
    """A built and started copy (options: see `Stack`), stopped with its services afterwards."""
    stack = Stack(**options)
    with exclusive(stack.run_dir), _running(stack):
        yield stack


@contextlib.contextmanager
def _running(stack: Stack) -> Iterator[Stack]:
    stack.build()
    try:
        stack.start_all()
        yield stack
    finally:
        stack.stop_all()
        with contextlib.suppress(RuntimeError):
            stack.services("down")
