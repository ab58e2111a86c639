"""Slow clients: /healthz latency while N connections trickle their requests, through nginx and directly.

    .venv/bin/python bench/slow_clients.py [--connections 500] [--requests 100] [--interval 0.05]
                                           [--timeout 10] [--proxy URL] [--direct URL]

Why: a thread-per-request server (gunicorn gthread, which the project used before granian) reads a
request's head and body in one of its threads, so a client sending a few bytes per second holds that
thread for as long as it likes, and 16 such clients (2 workers x 8 threads) stall the whole API.
nginx in front (`scripts/devservices.py proxy`, the Procfile's `proxy`) reads every request
completely before the web server sees it (and granian itself reads requests in its Rust I/O threads).

For each target (--proxy, default http://127.0.0.1:$WEB_PORT, then --direct, default the web server itself
on http://127.0.0.1:$WEB_UPSTREAM_PORT; an empty value skips one) the script:
1. requests /healthz 20 times with nothing else going on (the idle baseline);
2. opens --connections connections to the target that trickle a `POST /api/v1/auth/token` with a
   100 kB body, 4 bytes every 0.5 s each (half of them trickle the head too, the other half send the
   head at once), and reopen when the server closes them; waits until every one is open;
3. requests /healthz --requests times, one after the other, --interval apart, each on a new
   connection with a --timeout (a timeout counts as --timeout in the figures), and stops early after
   --give-up-after failures in a row (a stalled server would otherwise cost --requests x --timeout);
4. prints n/ok/p50/p95/max for both phases, then closes its connections.

Run it against a stack started with `make up` (both ports belong to it). While it runs against
a thread-per-request server directly, the API of that stack stalls for everyone: that is the point it measures.
"""

from __future__ import annotations

import argparse
import asyncio
import http.client
import os
import threading
import time
from dataclasses import dataclass, field
from urllib.parse import urlsplit

BODY_BYTES = 100_000


class SlowClients:
    """`count` connections to host:port, each trickling a request; a context manager (own thread)."""

    def __init__(self, host: str, port: int, count: int, *, chunk: int = 4, pause: float = 0.5):
        self.host, self.port, self.count, self.chunk, self.pause = host, port, count, chunk, pause
        self.opened: set[int] = set()  # clients connected at least once
        self.connects = 0  # every connection opened, reopenings included
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._started = threading.Event()
        self._thread = threading.Thread(target=lambda: asyncio.run(self._main()), daemon=True)

    def __enter__(self) -> SlowClients:
        self._thread.start()
        self._started.wait(10)
        return self

    def wait_open(self, timeout: float = 60) -> bool:
        deadline = time.monotonic() + timeout
        while len(self.opened) < self.count and time.monotonic() < deadline:
            time.sleep(0.05)
        return len(self.opened) >= self.count

    def __exit__(self, *exc) -> None:
        if self._loop is not None and self._stop is not None:
            self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(30)

    async def _main(self) -> None:
        self._loop, self._stop = asyncio.get_running_loop(), asyncio.Event()
        self._started.set()
        tasks = [asyncio.create_task(self._client(i)) for i in range(self.count)]
        await self._stop.wait()
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    def _request(self, index: int) -> tuple[bytes, bytes]:
        """(sent at once, trickled): half the clients trickle the head too."""
        head = (
            f"POST /api/v1/auth/token HTTP/1.1\r\nHost: {self.host}:{self.port}\r\n"
            f"Content-Type: application/json\r\nContent-Length: {BODY_BYTES}\r\n\r\n"
        ).encode()
        body = b'{"username": "' + b"x" * (BODY_BYTES - 16) + b'"}'
        return (b"", head + body) if index % 2 == 0 else (head, body)

    async def _client(self, index: int) -> None:
        at_once, trickled = self._request(index)
        while True:
            try:
                reader, writer = await asyncio.open_connection(self.host, self.port)
            except OSError:
                await asyncio.sleep(self.pause)
                continue
            self.opened.add(index)
            self.connects += 1
            closed = asyncio.ensure_future(reader.read())  # completes when the server answers or closes
            try:
                writer.write(at_once)
                for start in range(0, len(trickled), self.chunk):
                    if closed.done():
                        break
                    writer.write(trickled[start : start + self.chunk])
                    await writer.drain()
                    await asyncio.sleep(self.pause)
                await closed
            except (OSError, ConnectionError):
                pass
            finally:
                closed.cancel()
                writer.close()


@dataclass
class Probe:
    timeout: float
    seconds: list[float] = field(default_factory=list)
    statuses: list[int | None] = field(default_factory=list)

    @property
    def ok(self) -> int:
        return sum(1 for s in self.statuses if s == 200)

    def quantile(self, q: float) -> float:
        ordered = sorted(self.seconds)
        return ordered[min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))] if ordered else float("nan")

    def line(self) -> str:
        ms = {name: self.quantile(q) * 1000 for name, q in (("p50", 0.5), ("p95", 0.95), ("max", 1.0))}
        return (
            f"n={len(self.statuses)} ok={self.ok} "
            + " ".join(f"{name}={value:.1f}ms" for name, value in ms.items())
            + (f" failed={[s for s in self.statuses if s != 200][:5]}" if self.ok < len(self.statuses) else "")
        )


def probe(
    host: str, port: int, count: int, *, interval: float = 0.05, timeout: float = 10.0, give_up_after: int = 0
) -> Probe:
    """`count` GET /healthz, one at a time, each on a new connection; stops early after `give_up_after`
    failures in a row (0: never)."""
    result = Probe(timeout)
    for _ in range(count):
        if (
            give_up_after
            and len(result.statuses) >= give_up_after
            and not any(s == 200 for s in result.statuses[-give_up_after:])
        ):
            break
        started = time.monotonic()
        status: int | None = None
        conn = http.client.HTTPConnection(host, port, timeout=timeout)
        try:
            conn.request("GET", "/healthz")
            response = conn.getresponse()
            response.read()
            status = response.status
        except (OSError, http.client.HTTPException):
            pass
        finally:
            conn.close()
        result.seconds.append(min(time.monotonic() - started, timeout) if status else timeout)
        result.statuses.append(status)
        time.sleep(interval)
    return result


def run_target(label: str, url: str, args: argparse.Namespace) -> None:
    parts = urlsplit(url)
    host, port = parts.hostname or "127.0.0.1", parts.port or 80
    print(f"{label:6} {url}  idle:  {probe(host, port, 20, interval=args.interval, timeout=args.timeout).line()}")
    with SlowClients(host, port, args.connections) as clients:
        if not clients.wait_open():
            print(f"{label:6} only {len(clients.opened)} of {args.connections} connections opened")
        result = probe(
            host, port, args.requests, interval=args.interval, timeout=args.timeout, give_up_after=args.give_up_after
        )
        print(
            f"{label:6} {url}  with {args.connections} slow connections "
            f"({clients.connects} opened in all):  {result.line()}",
            flush=True,
        )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], epilog="See the module docstring.")
    parser.add_argument("--connections", type=int, default=500)
    parser.add_argument("--requests", type=int, default=100, help="/healthz requests per target")
    parser.add_argument("--interval", type=float, default=0.05, help="seconds between two /healthz requests")
    parser.add_argument("--timeout", type=float, default=10.0, help="seconds one /healthz may take")
    parser.add_argument("--give-up-after", type=int, default=5, help="failures in a row that end a target's probe")
    parser.add_argument("--proxy", default=f"http://127.0.0.1:{os.environ.get('WEB_PORT', '8000')}")
    parser.add_argument("--direct", default=f"http://127.0.0.1:{os.environ.get('WEB_UPSTREAM_PORT', '8002')}")
    args = parser.parse_args(argv)
    for label, url in (("proxy", args.proxy), ("direct", args.direct)):
        if url:
            run_target(label, url, args)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
