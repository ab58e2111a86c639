"""Run the Procfile's own commands (proxy, web, sse) as child processes on free ports, for tests.

A line runs through `/bin/sh -c "exec ..."` with the environment given, as honcho runs it, in a
session of its own: stopping it signals that process group only (nginx's and the web server's workers).
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import time
from pathlib import Path

import requests

REPO = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def procfile_command(name: str, procfile: str = "Procfile") -> str:
    for line in (REPO / procfile).read_text().splitlines():
        if line.startswith(f"{name}:"):
            return line.split(":", 1)[1].strip()
    raise LookupError(f"{procfile} has no `{name}` process")


class Child:
    """One Procfile process; a context manager that stops it (SIGTERM, then SIGKILL) and its group."""

    def __init__(self, name: str, env: dict[str, str], log_dir: Path, procfile: str = "Procfile"):
        self.name = name
        self.log = log_dir / f"{name}.log"
        self.log.parent.mkdir(parents=True, exist_ok=True)
        with self.log.open("wb") as out:
            self.proc = subprocess.Popen(
                ["/bin/sh", "-c", f"exec {procfile_command(name, procfile)}"],
                cwd=REPO,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    def __enter__(self) -> Child:
        return self

    def __exit__(self, *exc) -> None:
        self.stop()

    def stop(self) -> None:
        """SIGTERM to the group, SIGKILL after 15 s; nginx and granian outlive their workers."""
        if self.proc.poll() is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGTERM)  # the session this child leads: its own pid
        try:
            self.proc.wait(15)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(5)

    def output(self, lines: int = 40) -> str:
        return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])

    def wait_http(self, url: str, timeout: float = 60, *, accept_unavailable: bool = False) -> None:
        """Until `url` answers: any status but 503 (the proxy's while its upstreams start), unless
        `accept_unavailable`."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"{self.name} exited with {self.proc.returncode}:\n{self.output()}")
            try:
                status = requests.get(url, timeout=2).status_code
                if status != 503 or accept_unavailable:
                    return
            except requests.RequestException:
                pass
            time.sleep(0.1)
        raise TimeoutError(f"{self.name}: {url} did not answer within {timeout} s:\n{self.output()}")
