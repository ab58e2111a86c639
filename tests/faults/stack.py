"""A complete, private copy of the system for fault and cluster tests: its own MariaDB, Redis and
broker (started by `scripts/devservices.py` under another RUN_DIR and other ports) and the real
processes of the Procfile running against them, one copy of each or several (`copies=2`: the
cluster test). Tests stop, restart and kill -9 pieces of THIS copy only; the shared services
other engineers use (3307/6380/9092) are never touched.

Everything here talks to the copy from the outside, as an operator would: HTTP to the web server, SQL
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

from tests.support.ports import free_port
from tests.support.processes import (
    REPO,
    Child,
    Children,
    celery_command,
    manage_command,
    process_env,
    uvicorn_command,
    web_command,
)
from tests.support.waiting import wait_until

RUN_DIR = ".run-faults"
DB_PORT, REDIS_PORT, KAFKA_PORT = 3327, 6400, 9102
COPY_NAMES = "abcdefgh"  # process names of a cluster: web_a, web_b, ...
TICKS = os.sysconf("SC_CLK_TCK")

# Our configuration variables: none may leak from the test run (which points at the shared services).
OURS = (
    *("DB_", "REDIS_", "KAFKA_", "CELERY_", "DJANGO_", "OUTBOX_", "THROTTLE_", "ORDER_", "QUEUE_", "SSE_", "JWT_"),
    "IDEMPOTENCY_",
)
LOCAL = ("RUN_DIR", "LOCAL_SERVICES")  # where the test run's services live


def stack_env(
    run_dir: str = RUN_DIR,
    db_port: int = DB_PORT,
    redis_port: int = REDIS_PORT,
    kafka_port: int = KAFKA_PORT,
    **extra: str,
) -> dict[str, str]:
    inherited = {name: value for name, value in os.environ.items() if not name.startswith(OURS) and name not in LOCAL}
    ours = dict(
        RUN_DIR=run_dir,
        DJANGO_ENV="local",
        DB_PORT=str(db_port),
        DB_NAME="shop",
        REDIS_URL=f"redis://127.0.0.1:{redis_port}/0",
        KAFKA_BOOTSTRAP_SERVERS=f"127.0.0.1:{kafka_port}",
        # The fallback applies what the relay/consumer path has not after 2 s (when it is run).
        OUTBOX_FALLBACK_AFTER_SECONDS="2",
        # The relay gives up on unacknowledged messages after this long and resumes from its checkpoint:
        # after a tansu restart nothing produced before it is ever acknowledged (30 s by default).
        OUTBOX_RELAY_DELIVERY_TIMEOUT_MS="5000",
        # A request whose web worker was killed leaves its Idempotency-Key claimed: a retry may take
        # it over after this long (60 s by default), so the clients' retries finish in seconds.
        IDEMPOTENCY_STALE_SECONDS="3",
        DB_CONN_MAX_AGE="60",
    )
    return process_env(inherited, **{**ours, **extra})  # `extra` (a test's settings) wins


@dataclass
class Stack:
    run_dir: str = RUN_DIR
    db_port: int = DB_PORT
    redis_port: int = REDIS_PORT
    kafka_port: int = KAFKA_PORT
    copies: int = 1  # of every process but beat (which is never more than one)
    web_workers: int = 2  # granian workers per web process
    sse: bool = False  # start the SSE server(s) and Celery beat too (the fault tests do without)
    settings: dict[str, str] = field(default_factory=dict)  # environment overrides for every process
    web_ports: list[int] = field(default_factory=list)
    sse_ports: list[int] = field(default_factory=list)
    commands: dict[str, list[str]] = field(default_factory=dict)  # the processes, by name (see `define`)

    def __post_init__(self) -> None:
        self.web_ports = self.web_ports or [free_port() for _ in range(self.copies)]
        self.sse_ports = self.sse_ports or [free_port() for _ in range(self.copies)]
        self.children = Children(self.log_dir)

    @property
    def root(self) -> Path:
        return REPO / self.run_dir

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
            cwd=REPO,
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
            manage_command(*args),
            cwd=REPO,
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
        self.commands = {}
        for index in range(self.copies):
            suffix = f"_{COPY_NAMES[index]}" if self.copies > 1 else ""
            worker = ("worker", "--concurrency=2", "--without-gossip", "--without-mingle", "-l", "info")
            kinds = {
                "web": web_command(self.web_ports[index], workers=self.web_workers),
                "sse": uvicorn_command(self.sse_ports[index]) if self.sse else None,
                "worker": celery_command(*worker, "-n", f"{self.run_dir.strip('.')}{suffix}@%h"),
                "checkout": manage_command("run_consumer", "checkout"),
                "relay": manage_command("outbox_relay"),
                "outbox": manage_command("run_consumer", "outbox"),
            }
            for kind, argv in kinds.items():
                if argv:
                    self.commands[f"{kind}{suffix}"] = argv
        if self.sse:
            schedule = str(self.root / "celerybeat-schedule")
            self.commands["beat"] = celery_command("beat", "-l", "info", "--schedule", schedule, "--pidfile=")

    def named(self, kind: str) -> list[str]:
        """The names of every copy of one kind of process: 'relay' -> ['relay_a', 'relay_b']."""
        return [name for name in self.commands if name == kind or name.startswith(f"{kind}_")]

    @property
    def processes(self) -> dict[str, Child]:
        """The processes started, by name (the latest start of each)."""
        return dict(self.children.started)

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

    def start(self, name: str) -> Child:
        """Start one of the defined processes, in a process group of its own, and record its pid."""
        child = self.children.start(name, self.commands[name], self.env())
        with self.pid_file.open("a") as pids:
            pids.write(f"{child.pid}\n")
        return child

    def start_all(self) -> None:
        self.define()
        for name in self.commands:
            self.start(name)
        self.wait(self.ready, timeout=60, what="/readyz 200")
        self.wait(lambda: self.relay_active(), timeout=30, what="the relay to hold its lock")

    def kill9(self, name: str) -> None:
        """kill -9 of the process and its children (its process group), as when its container dies:
        no signal handler, no `finally`, no flush."""
        assert self.children.running(name), f"{name} is not running:\n{self.log(name)}"
        self.children[name].kill()

    def restart(self, name: str) -> Child:
        """What a supervisor does after a crash."""
        return self.start(name)

    def stop(self, name: str) -> None:
        """SIGTERM to its process group (the web server's and Celery's children too), SIGKILL after 15 s, then
        SIGKILL to anything a kill -9 orphaned in the group."""
        self.children.stop(name)

    def stop_all(self) -> None:
        self.children.stop_all()

    def pids(self) -> dict[str, int | None]:
        return {name: child.pid if child.alive() else None for name, child in self.processes.items()}

    def child_pids(self, name: str) -> list[int]:
        """Child pids of a process (web workers, celery pool processes)."""
        pid = self.children[name].pid
        with contextlib.suppress(OSError):
            return [int(child) for child in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
        return []

    def cpu_seconds(self) -> dict[str, float]:
        """CPU time (user + system) so far of each process with everything in its process group
        (web workers and Celery children included), and of the copy's MariaDB, Redis and broker."""
        groups = {child.pid: name for name, child in self.processes.items() if child.alive()}
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
        path = self.children.log_path(name)
        lines = path.read_text(errors="replace").splitlines() if path.exists() else []
        noise = ("_TRANSPORT", "_ALL_BROKERS_DOWN", "Connection refused")
        lines = [line for line in lines if not line.startswith("%") and not any(n in line for n in noise)]
        return "\n".join(lines[-tail:])

    def dead(self) -> dict[str, int | None]:
        """Processes that exited, with their exit codes (negative: killed by that signal)."""
        return {name: child.returncode for name, child in self.processes.items() if not child.alive()}

    def logs(self) -> str:
        return "\n".join(f"--- {name} ---\n{self.log(name)}" for name in self.processes)

    def dead_report(self) -> str:
        dead = self.dead()
        logs = "\n".join(f"--- {name} ---\n{self.log(name)}" for name in dead)
        return f"dead processes (exit codes): {dead}\n{logs}"

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
            if not self.children.running(name):
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
            celery_command("call", task),
            cwd=REPO,
            env=self.env(),
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert result.returncode == 0, result.stdout + result.stderr

    def wait(self, predicate: Callable[[], Any], *, timeout: float, what: str, interval: float = 0.2) -> Any:
        """`wait_until`, telling on a timeout which processes died and their last log lines."""
        return wait_until(predicate, timeout=timeout, what=what, interval=interval, details=self.dead_report)


@contextlib.contextmanager
def exclusive(run_dir: str = RUN_DIR, timeout: float = 900) -> Iterator[None]:
    """One run per copy at a time on this machine: the copy's ports and folder are fixed."""
    digest = hashlib.sha1(f"{REPO}/{run_dir}".encode()).hexdigest()[:12]
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
