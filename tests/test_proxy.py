"""The reverse proxy of `make run`: the Procfile's `proxy` (nginx, config by scripts/devservices.py).

Real nginx on free ports. Its upstreams are small HTTP servers in this process that record what
reaches them (to see the forwarded headers and when a request arrives), or, for the slow-client
case, the Procfile's own `web` (granian with its workers and threads).
"""

from __future__ import annotations

import json
import os
import re
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
import requests

from bench.slow_clients import SlowClients, probe
from tests.edge import Child, free_port

pytestmark = pytest.mark.slow


class Upstream(ThreadingHTTPServer):
    """Answers every request with what it received; `/api/sse/stream` streams two events, the second
    only once `release` is set."""

    daemon_threads = True

    def __init__(self, name: str):
        self.name = name
        self.seen: list[dict] = []
        self.release = threading.Event()
        super().__init__(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.serve_forever, daemon=True).start()

    @property
    def port(self) -> int:
        return self.server_address[1]


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: Upstream

    def log_message(self, *args) -> None:
        pass

    def _answer(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        seen = {"upstream": self.server.name, "method": self.command, "path": self.path}
        seen.update(headers=dict(self.headers.items()), body_bytes=len(body))
        self.server.seen.append(seen)
        if self.path == "/api/sse/stream":
            self.send_response(200)
            self.send_header("Content-Type", "text/event-stream")
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            self._chunk(b"data: first\n\n")
            self.server.release.wait(20)
            self._chunk(b"data: second\n\n")
            self._chunk(b"")
            return
        payload = json.dumps(seen).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def _chunk(self, data: bytes) -> None:
        self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))
        self.wfile.flush()

    do_GET = do_POST = do_PUT = _answer


def start_proxy(tmp_path, web_port: int, sse_port: int) -> tuple[Child, str]:
    port = free_port()
    env = {
        **os.environ,
        "RUN_DIR": str(tmp_path / "run"),
        "WEB_PORT": str(port),
        "WEB_UPSTREAM_PORT": str(web_port),
        "SSE_PORT": str(sse_port),
    }
    return Child("proxy", env, tmp_path / "logs"), f"http://127.0.0.1:{port}"


@pytest.fixture(scope="module")
def upstreams():
    web, sse = Upstream("web"), Upstream("sse")
    yield web, sse
    for server in (web, sse):
        server.release.set()
        server.shutdown()
        server.server_close()


@pytest.fixture(scope="module")
def proxy(upstreams, tmp_path_factory):
    web, sse = upstreams
    child, url = start_proxy(tmp_path_factory.mktemp("proxy"), web.port, sse.port)
    with child:
        child.wait_http(f"{url}/healthz", timeout=20)
        yield url


def test_api_and_sse_share_one_origin(proxy):
    assert requests.get(f"{proxy}/api/v1/products?page=2", timeout=5).json()["upstream"] == "web"
    assert requests.get(f"{proxy}/admin/", timeout=5).json()["upstream"] == "web"
    seen = requests.get(f"{proxy}/api/sse/subscribe/7?token=abc", timeout=5).json()
    assert (seen["upstream"], seen["path"]) == ("sse", "/api/sse/subscribe/7?token=abc")


def test_the_client_address_is_the_proxy_s_to_tell_and_the_arrival_time_is_stamped(proxy):
    port = proxy.rsplit(":", 1)[1]
    before = time.time()
    seen = requests.get(f"{proxy}/x", headers={"X-Forwarded-For": "6.6.6.6"}, timeout=5).json()
    headers = seen["headers"]
    assert headers["X-Forwarded-For"] == "127.0.0.1"  # the client's own header is replaced, not kept
    assert headers["X-Forwarded-Proto"] == "http"
    assert headers["Host"] == f"127.0.0.1:{port}"
    stamp = re.fullmatch(r"t=(\d+\.\d{3})", headers["X-Request-Start"])
    assert stamp and before - 1 <= float(stamp.group(1)) <= time.time() + 1, headers["X-Request-Start"]


def test_a_request_reaches_the_upstream_only_once_its_body_is_complete(proxy, upstreams):
    web, _ = upstreams
    port = int(proxy.rsplit(":", 1)[1])
    marker = f"/buffered/{time.monotonic_ns()}"
    head = f"POST {marker} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 2000\r\n\r\n"
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(head.encode() + b"x" * 1000)
        time.sleep(1.0)  # a slow client: half the body, then a pause
        assert not [s for s in web.seen if s["path"] == marker]  # the web server would have it by now
        sock.sendall(b"x" * 1000)
        answer = sock.recv(65536).decode()
    assert answer.startswith("HTTP/1.1 200"), answer
    assert [s["body_bytes"] for s in web.seen if s["path"] == marker] == [2000]


def test_a_body_over_1_mb_is_413_in_the_envelope_and_never_reaches_the_upstream(proxy, upstreams):
    web, _ = upstreams
    response = requests.post(f"{proxy}/too-large", data=b"x" * (1024 * 1024 + 1), timeout=10)
    assert response.status_code == 413
    assert response.headers["Content-Type"] == "application/json"
    assert response.json() == {
        "success": False,
        "errorCode": "PAYLOAD_TOO_LARGE",
        "errorMessage": "The request body exceeds the 1 MB limit.",
        "data": None,
    }
    assert not [s for s in web.seen if s["path"] == "/too-large"]


def test_events_are_streamed_as_they_come(proxy, upstreams):
    _, sse = upstreams
    sse.release.clear()
    with requests.get(f"{proxy}/api/sse/stream", stream=True, timeout=10) as response:
        lines = response.iter_lines()
        assert next(lines) == b"data: first"  # delivered while the upstream still holds the stream open
        sse.release.set()
        assert [line for line in lines if line] == [b"data: second"]


def test_an_upstream_that_is_down_is_503_in_the_envelope(tmp_path):
    child, url = start_proxy(tmp_path, free_port(), free_port())  # nothing listens on either
    with child:
        child.wait_http(f"{url}/healthz", timeout=20, accept_unavailable=True)
        for path in ("/api/v1/products", "/api/sse/subscribe/1"):
            response = requests.get(f"{url}{path}", timeout=10)
            assert (response.status_code, response.headers["Retry-After"]) == (503, "1")
            assert response.json()["errorCode"] == "SERVICE_UNAVAILABLE"


def test_slow_clients_do_not_stall_the_api(tmp_path):
    """500 connections trickling their requests (4 bytes every 0.5 s: half the head, half the body)
    while /healthz is asked 100 times. Without the proxy, a thread-per-request server's threads each block on one of
    them and /healthz times out (see bench/slow_clients.py, which measures both)."""
    web_port = free_port()
    env = {**os.environ, "WEB_UPSTREAM_PORT": str(web_port), "DB_NAME": "no_such_database_proxy_test"}
    proxy, url = start_proxy(tmp_path, web_port, free_port())
    with Child("web", env, tmp_path / "logs") as web, proxy:
        web.wait_http(f"http://127.0.0.1:{web_port}/healthz")
        proxy.wait_http(f"{url}/healthz")
        host, port = "127.0.0.1", int(url.rsplit(":", 1)[1])
        with SlowClients(host, port, 500) as clients:
            assert clients.wait_open(), f"{len(clients.opened)} of 500 slow connections opened"
            result = probe(host, port, 100, interval=0.05, timeout=10)
        assert result.statuses == [200] * 100, result.line()
        assert result.quantile(0.95) < 1.0, result.line()  # loose: without the proxy it is > 9 s
