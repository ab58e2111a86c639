"""A raw server-sent-events client for tests (what a browser's EventSource does)."""

from __future__ import annotations

import http.client
import json
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
