"""A loopback HTTP reverse proxy in front of an S3 endpoint that injects faults.

The pipeline's boto3 client talks to the proxy exactly as it would to AWS (point
the ``aws_default`` connection's ``endpoint_url`` at ``proxy.endpoint``); the
proxy forwards every request to the real S3 server (moto) unless a rule says to
fail it. Faults are what S3 and S3-compatible services really return:

* ``"500"``: ``InternalError``; ``"503"``: ``ServiceUnavailable``;
  ``"slowdown"``: 503 ``SlowDown`` (throttling);
* ``"drop"``: the connection closes before any response (the request never
  reached S3);
* ``"drop_after"``: the request is forwarded and *done* by S3, then the
  connection closes before the client sees the answer (a copy or delete that
  happened although the client thinks it failed);
* ``"404"``: a HEAD/GET answers ``NoSuchKey`` (a copy not visible yet);
* ``"403"``: ``AccessDenied`` (keys without that permission; not retried);
* ``"hang"``: the request waits (unanswered) until ``release()``, so a test
  can kill its client at exactly that point.

    with S3FaultProxy(moto_endpoint) as proxy:
        proxy.add_rule(FaultRule(op="DELETE", fault="503", count=2))
        proxy.add_rule(FaultRule(op="*", fault="drop", probability=0.1))
        ...
        proxy.log  # every request: op, key, fault (or None) and upstream status

Operations: ``GET``, ``PUT``, ``COPY`` (PUT with ``x-amz-copy-source``),
``DELETE``, ``HEAD``, ``LIST`` (GET on the bucket), ``POST`` (multipart and
batch deletes), ``*`` for all.
"""

from __future__ import annotations

import http.client
import random
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import unquote, urlsplit

FAULTS = ("500", "503", "slowdown", "drop", "drop_after", "404", "403", "hang")

_ERROR_BODIES = {
    "500": (500, "InternalError", "We encountered an internal error. Please try again."),
    "503": (503, "ServiceUnavailable", "Please reduce your request rate."),
    "slowdown": (503, "SlowDown", "Please reduce your request rate."),
    "404": (404, "NoSuchKey", "The specified key does not exist."),
    "403": (403, "AccessDenied", "Access Denied"),
}
_HOP_BY_HOP = {"connection", "keep-alive", "transfer-encoding", "te", "trailer", "upgrade", "proxy-connection"}


@dataclass
class FaultRule:
    """Fail matching requests.

    :param op: the operation (see the module docstring), or ``*``.
    :param fault: one of :data:`FAULTS`.
    :param count: fail at most this many matching requests (None: no limit).
    :param probability: fail a matching request with this probability (seeded RNG of the proxy).
    :param key_contains: only requests whose object key contains this text.
    :param copy_source_contains: only COPY requests whose source key contains this text.
    """

    op: str
    fault: str
    count: int | None = None
    probability: float = 1.0
    key_contains: str | None = None
    copy_source_contains: str | None = None
    fired: int = 0

    def __post_init__(self) -> None:
        if self.fault not in FAULTS:
            raise ValueError(f"unknown fault {self.fault!r}; use one of {FAULTS}")

    def matches(self, op: str, key: str, copy_source: str | None) -> bool:
        if self.op not in ("*", op):
            return False
        if self.key_contains is not None and self.key_contains not in key:
            return False
        if self.copy_source_contains is not None and (
            copy_source is None or self.copy_source_contains not in copy_source
        ):
            return False
        return self.count is None or self.fired < self.count


@dataclass(frozen=True)
class LoggedRequest:
    op: str
    key: str
    copy_source: str | None
    fault: str | None
    status: int | None  # what S3 answered (None when the request never reached it)
    seq: int = 0


@dataclass
class _State:
    rules: list[FaultRule] = field(default_factory=list)
    log: list[LoggedRequest] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)
    rng: random.Random = field(default_factory=lambda: random.Random(1234))
    release: threading.Event = field(default_factory=threading.Event)
    hanging: threading.Event = field(default_factory=threading.Event)


def classify(method: str, path: str, query: str, headers: dict[str, str]) -> tuple[str, str, str | None]:
    """(operation, object key, copy source key) of a path-style S3 request."""
    parts = unquote(path).lstrip("/").split("/", 1)
    key = parts[1] if len(parts) > 1 else ""
    copy_source = headers.get("x-amz-copy-source")
    if copy_source is not None:
        copy_source = unquote(copy_source).lstrip("/").split("/", 1)[-1].split("?versionId=")[0]
    if method == "PUT" and copy_source is not None:
        return "COPY", key, copy_source
    if method == "GET" and not key:
        return "LIST", key, None
    return method, key, None


class S3FaultProxy:
    """The proxy server; ``endpoint`` is its URL. Rules can change while it runs."""

    def __init__(self, upstream: str, *, seed: int = 1234):
        split = urlsplit(upstream)
        self.upstream_host = split.hostname or "127.0.0.1"
        self.upstream_port = split.port or 80
        self.state = _State(rng=random.Random(seed))
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def __enter__(self) -> S3FaultProxy:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()
        self._server.shutdown()
        self._server.server_close()

    # -- control --------------------------------------------------------------

    def add_rule(self, rule: FaultRule) -> FaultRule:
        with self.state.lock:
            self.state.rules.append(rule)
        return rule

    def release(self) -> None:
        """Let hanging requests go (they then fail with a dropped connection)."""
        self.state.release.set()

    def wait_for_hang(self, timeout: float = 60) -> bool:
        return self.state.hanging.wait(timeout)

    def clear_rules(self) -> None:
        with self.state.lock:
            self.state.rules.clear()

    @property
    def log(self) -> list[LoggedRequest]:
        with self.state.lock:
            return list(self.state.log)

    def faults_injected(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for entry in self.log:
            if entry.fault:
                counts[f"{entry.op} {entry.fault}"] = counts.get(f"{entry.op} {entry.fault}", 0) + 1
        return counts

    def _pick_fault(self, op: str, key: str, copy_source: str | None) -> str | None:
        with self.state.lock:
            for rule in self.state.rules:
                if rule.matches(op, key, copy_source) and self.state.rng.random() < rule.probability:
                    rule.fired += 1
                    return rule.fault
        return None

    def _record(self, op: str, key: str, copy_source: str | None, fault: str | None, status: int | None) -> None:
        with self.state.lock:
            self.state.log.append(LoggedRequest(op, key, copy_source, fault, status, seq=len(self.state.log)))

    # -- the handler --------------------------------------------------------------

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: object) -> None:  # quiet
                return

            def _body(self) -> bytes:
                length = int(self.headers.get("Content-Length") or 0)
                if length:
                    return self.rfile.read(length)
                if (self.headers.get("Transfer-Encoding") or "").lower() == "chunked":
                    chunks = []
                    while True:
                        size = int(self.rfile.readline().strip().split(b";")[0], 16)
                        if size == 0:
                            self.rfile.readline()
                            break
                        chunks.append(self.rfile.read(size))
                        self.rfile.readline()
                    return b"".join(chunks)
                return b""

            def _error(self, fault: str) -> None:
                status, code, message = _ERROR_BODIES[fault]
                body = (
                    f'<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>{code}</Code>'
                    f"<Message>{message}</Message><RequestId>fault-proxy</RequestId></Error>"
                ).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/xml")
                self.send_header("Content-Length", "0" if self.command == "HEAD" else str(len(body)))
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(body)

            def _drop(self) -> None:
                self.close_connection = True
                try:
                    self.connection.shutdown(2)
                except OSError:
                    pass

            def _handle(self) -> None:
                split = urlsplit(self.path)
                headers = {k.lower(): v for k, v in self.headers.items()}
                op, key, copy_source = classify(self.command, split.path, split.query, headers)
                body = self._body()
                fault = proxy._pick_fault(op, key, copy_source)
                if fault == "hang":
                    proxy._record(op, key, copy_source, fault, None)
                    proxy.state.hanging.set()
                    proxy.state.release.wait(120)
                    self._drop()
                    return
                if fault in ("drop",):
                    proxy._record(op, key, copy_source, fault, None)
                    self._drop()
                    return
                if fault in _ERROR_BODIES:
                    proxy._record(op, key, copy_source, fault, None)
                    self._error(fault)
                    return
                upstream = http.client.HTTPConnection(proxy.upstream_host, proxy.upstream_port, timeout=300)
                try:
                    forward = {k: v for k, v in self.headers.items() if k.lower() not in _HOP_BY_HOP}
                    if body or self.command in ("PUT", "POST"):
                        forward["Content-Length"] = str(len(body))
                    upstream.request(self.command, self.path, body=body or None, headers=forward)
                    response = upstream.getresponse()
                    proxy._record(op, key, copy_source, fault, response.status)
                    if fault == "drop_after":
                        response.read()
                        self._drop()
                        return
                    self.send_response_only(response.status, response.reason)
                    length = response.getheader("Content-Length")
                    for name, value in response.getheaders():
                        if name.lower() not in _HOP_BY_HOP and name.lower() != "content-length":
                            self.send_header(name, value)
                    if self.command == "HEAD":
                        self.send_header("Content-Length", length or "0")
                        self.end_headers()
                        return
                    if length is not None:
                        self.send_header("Content-Length", length)
                        self.end_headers()
                        while chunk := response.read(1024 * 1024):
                            self.wfile.write(chunk)
                    else:
                        data = response.read()
                        self.send_header("Content-Length", str(len(data)))
                        self.end_headers()
                        self.wfile.write(data)
                finally:
                    upstream.close()

            do_GET = do_PUT = do_POST = do_DELETE = do_HEAD = _handle

        return Handler
