"""SSE fan-out: what ONE SSE server process (uvicorn + django-eventstream + Redis listener) holds and delivers.

    .venv/bin/python bench/sse_fanout.py [--connections 200,1000,2000] [--rate 100] [--seconds 20]
                                         [--runs 3] [--users 1000] [--out result.json]

Why: docs/SCALING.md sizes the SSE tier by connections per process and CPU per delivered event.

Per run and connection count C, the script:
1. starts its own uvicorn (the Procfile `sse:` command, config.asgi:application) on a free loopback port,
   with this environment (DJANGO_ENV=local by default: MariaDB 3307, Redis 6380), and opens one warm-up
   stream so Django and the Redis listener are loaded;
2. reads the process's VmRSS, then opens C streams (`GET /api/sse/subscribe/<id>?token=...`, tokens from
   common.sse.views.sse_token_issue, users 1..--users of the seeded demo data; above that, several streams per
   user) with raw asyncio sockets and waits for each `stream-open`: connections held, RSS per connection,
   MariaDB connections per stream (Threads_connected before/after). Each open stream pins one DB
   connection (Django runs each ASGI request's sync code in a thread of its own, and the connection lives
   until the stream ends), so a C that would leave fewer than --db-margin of the MariaDB's max_connections
   free is skipped: the DB is shared;
3. publishes events of type `bench-fanout` with the real common.sse.push.sse_push at --rate events/s for
   --seconds, round robin over the connected users, from a thread of this process; every event carries
   its publish time (wall clock, same host);
4. waits for the deliveries to drain, then reports: deliveries expected/received/lost, delivery latency
   p50/p95/p99 (sse_push call -> line read by the client), uvicorn CPU ms per delivered event and per
   published event (utime + stime of /proc/<pid>/stat over the publish window), the Redis messages
   on `events_channel` during the window (other processes' events reach every SSE process too), the
   achieved publish rate and the 1-minute load average;
5. stops its uvicorn (by pid; its output goes to $TMPDIR/sse_fanout_uvicorn_<port>.log) and deletes
   what it stored in django_eventstream's tables: its `bench-fanout`
   Event rows, and the placeholder rows and EventCounters of channels that had none before.
The summary gives the median of the runs per C. Not part of the test suite: run it by hand.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(REPO / "bench"), str(REPO)]
from procstats import TICKS, cpu_ticks, django_setup, percentile  # noqa: E402

from tests.support.ports import free_port  # noqa: E402
from tests.support.processes import uvicorn_command  # noqa: E402

MARKER = "bench-fanout"


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], epilog="See the module docstring.")
    parser.add_argument("--connections", default="200,1000,2000", help="comma-separated stream counts")
    parser.add_argument("--rate", type=float, default=100.0, help="events published per second (default 100)")
    parser.add_argument("--seconds", type=float, default=20.0, help="publish window (default 20)")
    parser.add_argument("--runs", type=int, default=3, help="runs per connection count; the summary is the median")
    parser.add_argument("--users", type=int, default=1000, help="demo users 1..N to connect as (default 1000)")
    parser.add_argument("--open-concurrency", type=int, default=50, help="streams being opened at once")
    parser.add_argument("--drain-seconds", type=float, default=10.0, help="max wait for the last deliveries")
    parser.add_argument(
        "--db-margin",
        type=int,
        default=100,
        help="MariaDB connections to leave free: a C that would not leave them is skipped (default 100)",
    )
    parser.add_argument("--out", help="write the results as JSON to this file")
    args = parser.parse_args(argv)
    args.connections = [int(c) for c in args.connections.split(",")]
    return args


# --- the uvicorn under test ------------------------------------------------------------------------


def start_uvicorn(port: int) -> subprocess.Popen:
    command = uvicorn_command(port)
    log = open(Path(tempfile.gettempdir()) / f"sse_fanout_uvicorn_{port}.log", "wb")  # noqa: SIM115
    process = subprocess.Popen(command, cwd=REPO, env={**os.environ}, stdout=log, stderr=subprocess.STDOUT)
    log.close()  # the child holds its own copy
    deadline = time.time() + 30
    while time.time() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"uvicorn exited with {process.returncode}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return process
        except OSError:
            time.sleep(0.2)
    process.terminate()
    raise RuntimeError("uvicorn did not listen within 30 s")


def stop(process: subprocess.Popen) -> None:
    process.terminate()
    try:
        process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS")


def cpu_seconds(pid: int) -> float:
    return (cpu_ticks(pid) or 0) / TICKS


def db_connections() -> tuple[int, int]:
    """(Threads_connected, max_connections) of the MariaDB; runs in a thread of its own, closes its connection."""
    from django.db import connection

    try:
        with connection.cursor() as cursor:
            cursor.execute("SHOW GLOBAL STATUS LIKE 'Threads_connected'")
            connected = int(cursor.fetchone()[1])
            cursor.execute("SELECT @@max_connections")
            return connected, int(cursor.fetchone()[0])
    finally:
        connection.close()


# --- the SSE clients -------------------------------------------------------------------------------


class Stream:
    """One SSE connection; records (seq, latency) of every `bench-fanout` event of this run."""

    def __init__(self, port: int, user_id: int, token: str, tag: str):
        self.port, self.user_id, self.token, self.tag = port, user_id, token, tag
        self.opened = asyncio.Event()
        self.received: list[tuple[int, float]] = []
        self.writer: asyncio.StreamWriter | None = None
        self.error: str | None = None

    async def run(self) -> None:
        try:
            reader, self.writer = await asyncio.open_connection("127.0.0.1", self.port, limit=2**20)
            self.writer.write(
                f"GET /api/sse/subscribe/{self.user_id}?token={self.token} HTTP/1.1\r\n"
                f"Host: 127.0.0.1:{self.port}\r\nAccept: text/event-stream\r\n\r\n".encode()
            )
            status = await reader.readline()
            if b" 200 " not in status:
                self.error = status.decode(errors="replace").strip()
                return
            while (line := await reader.readline()) not in (b"\r\n", b""):
                pass  # headers
            event_type = None
            while line := await reader.readline():
                if line.startswith(b"event: "):
                    event_type = line[7:].strip().decode()
                    if event_type == "stream-open":
                        self.opened.set()
                elif line.startswith(b"data: ") and event_type == MARKER:
                    arrived = time.time()
                    data = json.loads(line[6:])
                    if isinstance(data, str):  # stored events are JSON-encoded once more
                        data = json.loads(data)
                    if data.get("bench") == self.tag:
                        self.received.append((data["seq"], arrived - data["t"]))
        except (OSError, asyncio.IncompleteReadError) as error:
            self.error = repr(error)
        except asyncio.CancelledError:
            pass
        finally:
            self.opened.set()  # never leave an opener waiting

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()


# --- publishing ------------------------------------------------------------------------------------


def publish(user_ids: list[int], rate: float, seconds: float, tag: str, pushed: list, halt: threading.Event) -> None:
    """sse_push at a fixed schedule; appends (seq, user id, push duration) to `pushed`."""
    from django.db import connection

    from common.sse.push import sse_push

    try:
        total = int(rate * seconds)
        start = time.time()
        for seq in range(total):
            if halt.is_set():
                break
            due = start + seq / rate
            if (wait := due - time.time()) > 0:
                time.sleep(wait)
            user_id = user_ids[seq % len(user_ids)]
            t0 = time.time()
            sse_push(user_id, MARKER, {"bench": tag, "seq": seq, "t": t0})
            pushed.append((seq, user_id, time.time() - t0))
    finally:
        connection.close()


def count_channel_messages(stop_event: threading.Event, counts: dict) -> None:
    """Count every message on django-eventstream's Redis channel (ours and other processes')."""
    import redis
    from django.conf import settings

    client = redis.Redis(**settings.EVENTSTREAM_REDIS)
    pubsub = client.pubsub()
    pubsub.subscribe("events_channel")
    counts["ready"] = True
    while not stop_event.is_set():
        message = pubsub.get_message(timeout=0.2)
        if message and message["type"] == "message":
            counts["messages"] += 1
            if MARKER.encode() not in message["data"]:
                counts["foreign"] += 1
    pubsub.close()
    client.close()


# --- one measurement -------------------------------------------------------------------------------


async def open_streams(port: int, user_ids: list[int], tag: str, concurrency: int) -> tuple[list, list]:
    from common.sse.views import sse_token_issue

    streams = [Stream(port, uid, sse_token_issue(user_id=uid), tag) for uid in user_ids]
    tasks = []
    gate = asyncio.Semaphore(concurrency)

    async def start(stream: Stream) -> None:
        async with gate:
            tasks.append(asyncio.create_task(stream.run()))
            await asyncio.wait_for(stream.opened.wait(), timeout=60)

    await asyncio.gather(*(start(s) for s in streams), return_exceptions=True)
    return streams, tasks


DB_PER_STREAM = [1.0]  # DB connections one open stream holds, as last measured


async def measure(connections: int, args, run: int) -> dict:
    user_pool = list(range(1, args.users + 1))
    stream_users = [user_pool[i % len(user_pool)] for i in range(connections)]
    per_user: dict[int, int] = {}
    for uid in stream_users:
        per_user[uid] = per_user.get(uid, 0) + 1
    connected, max_connections = await asyncio.to_thread(db_connections)
    room = max_connections - connected - args.db_margin
    needs = math.ceil(connections * DB_PER_STREAM[0])
    if needs > room:
        # If open streams pin DB connections (they did before common.sse.storage.StreamStorage), more would
        # exhaust the shared MariaDB. The estimate is what the previous measurement found (1 at first).
        return {"run": run, "connections": connections, "skipped": f"needs ~{needs} DB connections, room {room}"}
    tag = uuid.uuid4().hex[:12]
    port = free_port()
    halt = threading.Event()
    uvicorn = start_uvicorn(port)
    pid = uvicorn.pid
    streams, tasks = [], []
    try:
        warm_streams, warm_tasks = await open_streams(port, [user_pool[0]], "warm-up", 1)
        await asyncio.sleep(1)
        rss_before = rss_mb(pid)
        db_before = (await asyncio.to_thread(db_connections))[0]
        cpu_before_open = cpu_seconds(pid)
        opening = time.time()
        streams, tasks = await open_streams(port, stream_users, tag, args.open_concurrency)
        open_seconds = time.time() - opening
        held = sum(1 for s in streams if s.error is None and s.opened.is_set())
        failures = [s.error for s in streams if s.error]
        await asyncio.sleep(2)  # let the process settle after the handshakes
        rss_after = rss_mb(pid)
        cpu_open = cpu_seconds(pid) - cpu_before_open
        db_after = (await asyncio.to_thread(db_connections))[0]
        DB_PER_STREAM[0] = max(0.02, (db_after - db_before) / max(connections, 1))

        connected_users = sorted({s.user_id for s in streams if s.error is None})
        pushed: list = []
        counts = {"messages": 0, "foreign": 0, "ready": False}
        stop_counting = threading.Event()
        counter = threading.Thread(target=count_channel_messages, args=(stop_counting, counts), daemon=True)
        counter.start()
        while not counts["ready"]:
            await asyncio.sleep(0.05)
        cpu_before = cpu_seconds(pid)
        publish_started = time.time()
        publisher = threading.Thread(
            target=publish, args=(connected_users, args.rate, args.seconds, tag, pushed, halt), daemon=True
        )
        publisher.start()
        while publisher.is_alive():
            await asyncio.sleep(0.1)
        publish_seconds = time.time() - publish_started
        expected = sum(per_user[uid] for _, uid, _ in pushed)
        drain_deadline = time.time() + args.drain_seconds
        while sum(len(s.received) for s in streams) < expected and time.time() < drain_deadline:
            await asyncio.sleep(0.1)
        cpu_window = cpu_seconds(pid) - cpu_before
        window_seconds = time.time() - publish_started
        stop_counting.set()
        counter.join()
        rss_end = rss_mb(pid)
        load = os.getloadavg()[0]

        latencies = sorted(latency for s in streams for _, latency in s.received)
        delivered = len(latencies)
        duplicates = sum(len(s.received) - len({seq for seq, _ in s.received}) for s in streams)
        push_ms = sorted(d * 1000 for _, _, d in pushed)
        return {
            "run": run,
            "connections": connections,
            "held": held,
            "openFailures": len(failures),
            "firstOpenFailure": failures[0] if failures else None,
            "openSeconds": round(open_seconds, 2),
            "uvicornCpuMsPerOpen": round(1000 * cpu_open / max(held, 1), 3),
            "rssMbBefore": round(rss_before, 1),
            "rssMbAfterOpen": round(rss_after, 1),
            "rssMbAfterEvents": round(rss_end, 1),
            "rssKbPerConnection": round(1024 * (rss_after - rss_before) / max(held, 1), 1),
            "dbConnectionsBefore": db_before,
            "dbConnectionsAfterOpen": db_after,
            "dbConnectionsPerStream": round((db_after - db_before) / max(held, 1), 3),
            "dbMaxConnections": max_connections,
            "published": len(pushed),
            "publishRateAchieved": round(len(pushed) / publish_seconds, 1),
            "pushMsP50": round(percentile(push_ms, 0.5), 2),
            "pushMsP95": round(percentile(push_ms, 0.95), 2),
            "expectedDeliveries": expected,
            "delivered": delivered,
            "lost": expected - delivered + duplicates,
            "duplicates": duplicates,
            "latencyMs": {
                "p50": round(percentile(latencies, 0.50) * 1000, 1),
                "p95": round(percentile(latencies, 0.95) * 1000, 1),
                "p99": round(percentile(latencies, 0.99) * 1000, 1),
            },
            "windowSeconds": round(window_seconds, 2),
            "uvicornCpuPercent": round(100 * cpu_window / window_seconds, 1),
            "uvicornCpuMsPerDelivered": round(1000 * cpu_window / max(delivered, 1), 3),
            "uvicornCpuMsPerPublished": round(1000 * cpu_window / max(len(pushed), 1), 3),
            "redisMessages": counts["messages"],
            "redisForeignMessages": counts["foreign"],
            "loadAvg1": round(load, 2),
        }
    finally:
        halt.set()
        if "publisher" in locals():
            publisher.join()
        for stream in streams + (warm_streams if "warm_streams" in locals() else []):
            stream.close()
        for task in tasks + (warm_tasks if "warm_tasks" in locals() else []):
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        stop(uvicorn)


# --- cleanup of django-eventstream rows ------------------------------------------------------------


def eventstream_snapshot() -> dict:
    from django_eventstream.models import Event, EventCounter

    return {
        "maxEventId": Event.objects.order_by("-id").values_list("id", flat=True).first() or 0,
        "counters": set(EventCounter.objects.values_list("name", flat=True)),
    }


def eventstream_cleanup(snapshot: dict) -> dict:
    """Delete our events, and the placeholder rows/counters of the channels we created."""
    from django.db import transaction
    from django_eventstream.models import Event, EventCounter

    with transaction.atomic():
        ours = Event.objects.filter(id__gt=snapshot["maxEventId"], type=MARKER)
        channels = set(ours.values_list("channel", flat=True).distinct())
        deleted_events = ours.delete()[0]
        new_channels = [
            c
            for c in channels - snapshot["counters"]
            if not Event.objects.filter(channel=c).exclude(eid=0).exists()  # nobody else wrote there meanwhile
        ]
        placeholders = Event.objects.filter(channel__in=new_channels, eid=0).delete()[0]
        counters = EventCounter.objects.filter(name__in=new_channels).delete()[0]
    return {"events": deleted_events, "placeholders": placeholders, "counters": counters}


# --- main ------------------------------------------------------------------------------------------


def summarize(measurements: list[dict]) -> list[dict]:
    by_c: dict[int, list[dict]] = {}
    for m in measurements:
        if "skipped" not in m:
            by_c.setdefault(m["connections"], []).append(m)
    summary = []
    for connections, runs in by_c.items():

        def median(key, runs=runs):
            return round(statistics.median(key(r) for r in runs), 3)

        summary.append(
            {
                "connections": connections,
                "runs": len(runs),
                "heldMin": min(r["held"] for r in runs),
                "rssKbPerConnection": median(lambda r: r["rssKbPerConnection"]),
                "rssMbAfterOpen": median(lambda r: r["rssMbAfterOpen"]),
                "dbConnectionsPerStream": median(lambda r: r["dbConnectionsPerStream"]),
                "uvicornCpuMsPerOpen": median(lambda r: r["uvicornCpuMsPerOpen"]),
                "publishRateAchieved": median(lambda r: r["publishRateAchieved"]),
                "deliveredPerSecond": median(lambda r: r["delivered"] / r["windowSeconds"]),
                "lostTotal": sum(r["lost"] for r in runs),
                "latencyP50Ms": median(lambda r: r["latencyMs"]["p50"]),
                "latencyP95Ms": median(lambda r: r["latencyMs"]["p95"]),
                "uvicornCpuPercent": median(lambda r: r["uvicornCpuPercent"]),
                "uvicornCpuMsPerDelivered": median(lambda r: r["uvicornCpuMsPerDelivered"]),
                "uvicornCpuMsPerPublished": median(lambda r: r["uvicornCpuMsPerPublished"]),
            }
        )
    return summary


def main(argv=None) -> int:
    args = parse_args(argv)
    django_setup()
    snapshot = eventstream_snapshot()
    load_start = os.getloadavg()
    measurements = []
    try:
        for run in range(1, args.runs + 1):
            for connections in args.connections:
                m = asyncio.run(measure(connections, args, run))
                measurements.append(m)
                if "skipped" in m:
                    print(f"run {run} C={connections}: skipped, {m['skipped']}", flush=True)
                    continue
                print(
                    f"run {run} C={connections}: held {m['held']} (open {m['openSeconds']} s), "
                    f"RSS {m['rssMbBefore']}->{m['rssMbAfterOpen']} MB = {m['rssKbPerConnection']} KB/conn | "
                    f"{m['published']} pushed ({m['publishRateAchieved']}/s), {m['delivered']}/"
                    f"{m['expectedDeliveries']} delivered, lost {m['lost']} | latency p50 {m['latencyMs']['p50']} "
                    f"p95 {m['latencyMs']['p95']} ms | uvicorn {m['uvicornCpuPercent']}% CPU, "
                    f"{m['uvicornCpuMsPerDelivered']} ms/delivered | redis msgs {m['redisMessages']} "
                    f"(foreign {m['redisForeignMessages']}) | load {m['loadAvg1']}",
                    flush=True,
                )
    finally:
        cleaned = eventstream_cleanup(snapshot)
        print(f"cleanup: {cleaned}")
    summary = summarize(measurements)
    print(json.dumps(summary, indent=2))
    if args.out:
        result = {
            "benchmark": "sse_fanout",
            "rate": args.rate,
            "seconds": args.seconds,
            "users": args.users,
            "cpus": os.cpu_count(),
            "loadAvgAtStart": [round(x, 2) for x in load_start],
            "loadAvgAtEnd": [round(x, 2) for x in os.getloadavg()],
            "cleanup": cleaned,
            "summary": summary,
            "measurements": measurements,
        }
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(json.dumps(result, indent=2) + "\n")
        print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
