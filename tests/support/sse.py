"""Server-sent events in tests: a raw client (what a browser's EventSource does) and the payload of
an event django-eventstream stored."""

from __future__ import annotations

import http.client
import json
import threading
import time


class Stream:
    """A raw SSE client (what EventSource does): GET, then read `event:`/`id:`/`data:` blocks."""

    def __init__(self, port: int, path: str, headers: dict[str, str] | None = None):
        self.conn = http.client.HTTPConnection("127.0.0.1", port, timeout=15)
        self.conn.request("GET", path, headers={"Accept": "text/event-stream", **(headers or {})})
        self.response = self.conn.getresponse()

    def next_event(self) -> tuple[str, str | None, str]:
        kind, event_id, data = "message", None, []
        while True:
            line = self.response.readline().decode().rstrip("\n")
            if line.startswith("event:"):
                kind = line[6:].strip()
            elif line.startswith("id:"):
                event_id = line[3:].strip()
            elif line.startswith("data:"):
                data.append(line[5:].strip())
            elif line == "" and (data or kind != "message"):
                return kind, event_id, "\n".join(data)

    def until(self, kind: str, request_id: str | None = None, timeout: float = 20) -> tuple[str, dict]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            got, event_id, data = self.next_event()
            if got == kind and (request_id is None or json.loads(data)["requestId"] == request_id):
                return event_id or "", json.loads(data) if data else {}
        raise TimeoutError(kind)

    def close(self) -> None:
        self.conn.close()


def stored_payload(data: str) -> dict:
    """The payload of a stored SSE event, from its `data` column: django-eventstream stores the JSON
    text of the JSON text we pushed."""
    decoded = json.loads(data)
    return json.loads(decoded) if isinstance(decoded, str) else decoded


def wait_for_live_delivery(port: int, user_id: int, token: str, *, timeout: float = 20) -> None:
    """Wait until the SSE server on `port` delivers published events live. It subscribes to Redis with
    its first stream, in the background, and an event published before that reaches a stream only when
    it reconnects: this pushes a `warm-up` event to the user every 0.2 s until one arrives on a stream
    of theirs."""
    from django.db import connection

    from common.sse.push import sse_push

    stream = Stream(port, f"/api/sse/subscribe/{user_id}?token={token}")
    stop = threading.Event()

    def push() -> None:
        try:
            while not stop.wait(0.2):
                sse_push(user_id, "warm-up", {"at": time.time()})
        finally:
            connection.close()

    pusher = threading.Thread(target=push, name="sse-warm-up")
    pusher.start()
    try:
        stream.until("warm-up", timeout=timeout)
    finally:
        stop.set()
        pusher.join()
        stream.close()
