"""Google Cloud Storage for tests: the gcp-storage-emulator process, a proxy in front of it, Google's auth on loopback.

* :func:`start_emulator` runs ``python -m gcp_storage_emulator`` (the PyPI
  package) as a process on 127.0.0.1; google-cloud-storage reaches it through
  ``STORAGE_EMULATOR_HOST`` exactly as it reaches ``storage.googleapis.com``.
* :class:`GcsProxy` sits between the client and the emulator. The emulator
  stores and serves objects but ignores generation preconditions on copies and
  deletes, so the proxy applies them the way GCS does (``412 conditionNotMet``)
  before forwarding; it also injects faults by rule (5xx, a connection dropped
  after GCS acted, a request that hangs until released) and logs every request.
* :class:`GoogleAuthServer` is Google's OAuth token endpoint (``token_uri`` of a
  service-account key) and a GCE metadata server (``GCE_METADATA_HOST``) on
  loopback: a service-account key made by :func:`service_account_key` gets a
  token for a JWT it really signed, and a "VM" gets its service account's token
  with no key at all.
"""

from __future__ import annotations

import base64
import http.client
import json
import re
import socket
import subprocess
import sys
import threading
import time
import uuid
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

from tests.fixtures.net import free_port

PROJECT = "video-pipeline-test"
VM_SERVICE_ACCOUNT = f"vm-sa@{PROJECT}.iam.gserviceaccount.com"


def start_emulator(log_path: Path) -> tuple[subprocess.Popen, str]:
    """The emulator as a process of its own session (in memory); returns it and its endpoint."""
    port = free_port()
    log = log_path.open("w")
    process = subprocess.Popen(
        [sys.executable, "-m", "gcp_storage_emulator", "start", "--host", "127.0.0.1", "--port", str(port), "-M"],
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"gcp-storage-emulator exited with {process.returncode}; see {log_path}")
        with socket.socket() as sock:
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                return process, f"http://127.0.0.1:{port}"
        time.sleep(0.1)
    process.kill()
    raise TimeoutError(f"gcp-storage-emulator did not listen on {port}; see {log_path}")


# -- the proxy ---------------------------------------------------------------------------

FAULTS = ("503", "403", "drop_after", "hang")
_COPY = re.compile(r"^/storage/v1/b/([^/]+)/o/(.+)/(?:rewriteTo|copyTo)/b/([^/]+)/o/(.+)$")
_OBJECT = re.compile(r"^/(?:download/)?storage/v1/b/([^/]+)/o/(.+)$")
_LIST = re.compile(r"^/storage/v1/b/([^/]+)/o/?$")
_UPLOAD = re.compile(r"^/upload/storage/v1/b/([^/]+)/o/?$")
_HOP_BY_HOP = {"connection", "keep-alive", "transfer-encoding", "te", "trailer", "upgrade", "proxy-connection"}


@dataclass
class FaultRule:
    """Fail up to ``count`` requests of ``op`` (COPY, DELETE, GET, LIST, UPLOAD, DOWNLOAD, XML) on matching keys."""

    op: str
    fault: str
    count: int | None = 1
    key_contains: str | None = None
    fired: int = 0

    def __post_init__(self) -> None:
        if self.fault not in FAULTS:
            raise ValueError(f"unknown fault {self.fault!r}; use one of {FAULTS}")

    def matches(self, op: str, key: str) -> bool:
        return (
            self.op in ("*", op)
            and (self.key_contains is None or self.key_contains in key)
            and (self.count is None or self.fired < self.count)
        )


@dataclass(frozen=True)
class Logged:
    op: str
    key: str
    query: dict[str, str]
    fault: str | None
    status: int | None  # what the emulator (or the precondition check) answered


def classify(method: str, path: str, query: dict[str, str]) -> tuple[str, str, str | None]:
    """(operation, object key, copy source) of a JSON-API (or XML-style signed URL) request."""
    if match := _COPY.match(path):
        return "COPY", unquote(match.group(4)), unquote(match.group(2))
    if match := _OBJECT.match(path):
        op = "DOWNLOAD" if path.startswith("/download/") or query.get("alt") == "media" else method
        return op, unquote(match.group(2)), None
    if _LIST.match(path):
        return ("LIST" if method == "GET" else method), "", None
    if _UPLOAD.match(path):
        return "UPLOAD", query.get("name", ""), None
    if path.startswith("/upload/"):
        return "UPLOAD", "", None
    parts = unquote(path).lstrip("/").split("/", 1)
    return "XML", parts[1] if len(parts) > 1 else "", None


class GcsProxy:
    """A loopback reverse proxy for the emulator; ``endpoint`` goes into ``STORAGE_EMULATOR_HOST``."""

    def __init__(self, upstream: str):
        split = urlsplit(upstream)
        self.upstream = (split.hostname or "127.0.0.1", split.port or 80)
        self.rules: list[FaultRule] = []
        self._log: list[Logged] = []
        self._lock = threading.Lock()
        self._precondition_lock = threading.Lock()
        self._release = threading.Event()
        self._hanging = threading.Event()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._server.daemon_threads = True
        # A short poll interval: shutdown() waits up to one interval, once per test.
        self._thread = threading.Thread(target=self._server.serve_forever, args=(0.05,), daemon=True)

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def __enter__(self) -> GcsProxy:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._release.set()
        self._server.shutdown()
        self._server.server_close()

    def add_rule(self, rule: FaultRule) -> FaultRule:
        with self._lock:
            self.rules.append(rule)
        return rule

    def clear(self) -> None:
        with self._lock:
            self.rules.clear()
            self._log.clear()
        self._release.clear()
        self._hanging.clear()

    def release(self) -> None:
        self._release.set()

    def wait_for_hang(self, timeout: float = 60) -> bool:
        return self._hanging.wait(timeout)

    @property
    def log(self) -> list[Logged]:
        with self._lock:
            return list(self._log)

    def _pick(self, op: str, key: str) -> str | None:
        with self._lock:
            for rule in self.rules:
                if rule.matches(op, key):
                    rule.fired += 1
                    return rule.fault
        return None

    def _record(self, *args: Any) -> None:
        with self._lock:
            self._log.append(Logged(*args))

    def _generation(self, bucket: str, key: str) -> int | None:
        """The live generation of ``key`` in the emulator (None: no such object)."""
        conn = http.client.HTTPConnection(*self.upstream, timeout=30)
        try:
            conn.request("GET", f"/storage/v1/b/{bucket}/o/{_quote(key)}")
            response = conn.getresponse()
            body = response.read()
        finally:
            conn.close()
        if response.status == 404:
            return None
        return int(json.loads(body)["generation"])

    def _precondition_failed(self, path: str, query: dict[str, str], op: str, key: str, source: str | None) -> bool:
        """What GCS checks before acting: the destination's (or object's) and the source's generation."""
        bucket = path.split("/")[4] if path.startswith("/storage/v1/b/") else ""
        if op == "COPY" and "ifGenerationMatch" in query:
            dest_bucket = _COPY.match(path).group(3)  # type: ignore[union-attr]
            if (self._generation(dest_bucket, key) or 0) != int(query["ifGenerationMatch"]):
                return True
        if op == "COPY" and "ifSourceGenerationMatch" in query and source is not None:
            if (self._generation(bucket, source) or 0) != int(query["ifSourceGenerationMatch"]):
                return True
        if op == "DELETE" and "ifGenerationMatch" in query:
            live = self._generation(bucket, key)
            if live is not None and live != int(query["ifGenerationMatch"]):
                return True
        return False

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            # Headers and body leave in separate writes; Nagle would hold each response ~40 ms.
            disable_nagle_algorithm = True

            def log_message(self, format: str, *args: object) -> None:
                return

            def _body(self) -> bytes:
                length = int(self.headers.get("Content-Length") or 0)
                if length:
                    return self.rfile.read(length)
                if (self.headers.get("Transfer-Encoding") or "").lower() == "chunked":
                    chunks = []
                    while size := int(self.rfile.readline().strip().split(b";")[0], 16):
                        chunks.append(self.rfile.read(size))
                        self.rfile.readline()
                    self.rfile.readline()
                    return b"".join(chunks)
                return b""

            def _json_error(self, status: int, reason: str, message: str) -> None:
                body = json.dumps(
                    {"error": {"code": status, "message": message, "errors": [{"reason": reason, "message": message}]}}
                ).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def _drop(self) -> None:
                self.close_connection = True
                try:
                    self.connection.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass

            def _handle(self) -> None:
                split = urlsplit(self.path)
                query = {k: v[0] for k, v in parse_qs(split.query).items()}
                op, key, source = classify(self.command, split.path, query)
                body = self._body()
                fault = proxy._pick(op, key)
                if fault == "hang":
                    proxy._record(op, key, query, fault, None)
                    proxy._hanging.set()
                    proxy._release.wait(120)
                    self._drop()
                    return
                if fault == "503":
                    proxy._record(op, key, query, fault, 503)
                    self._json_error(503, "backendError", "We encountered an internal error. Please try again.")
                    return
                if fault == "403":
                    proxy._record(op, key, query, fault, 403)
                    self._json_error(403, "forbidden", "Caller does not have storage.objects.delete access.")
                    return
                # Check and act as one step, as GCS does for a precondition.
                with proxy._precondition_lock:
                    if proxy._precondition_failed(split.path, query, op, key, source):
                        proxy._record(op, key, query, fault, 412)
                        self._json_error(
                            412, "conditionNotMet", "At least one of the pre-conditions you specified did not hold."
                        )
                        return
                    status, reason, headers, data = self._forward(body)
                proxy._record(op, key, query, fault, status)
                if fault == "drop_after":
                    self._drop()
                    return
                self.send_response_only(status, reason)
                for name, value in headers:
                    if name.lower() not in _HOP_BY_HOP and name.lower() != "content-length":
                        self.send_header(name, value)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(data)

            def _forward(self, body: bytes) -> tuple[int, str, list[tuple[str, str]], bytes]:
                upstream = http.client.HTTPConnection(*proxy.upstream, timeout=300)
                try:
                    upstream.connect()
                    upstream.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                    forward = {k: v for k, v in self.headers.items() if k.lower() not in _HOP_BY_HOP}
                    if body or self.command in ("PUT", "POST"):
                        forward["Content-Length"] = str(len(body))
                    upstream.request(self.command, self.path, body=body or None, headers=forward)
                    response = upstream.getresponse()
                    data = response.read()
                    headers = response.getheaders()
                    # Resumable sessions tell the client where to send the bytes: keep it on the proxy.
                    host = f"127.0.0.1:{proxy.upstream[1]}"
                    mine = proxy.endpoint.removeprefix("http://")
                    headers = [(n, v.replace(host, mine) if n.lower() == "location" else v) for n, v in headers]
                    return response.status, response.reason, headers, data
                finally:
                    upstream.close()

            do_GET = do_PUT = do_POST = do_DELETE = do_HEAD = do_PATCH = _handle

        return Handler


def _quote(key: str) -> str:
    from urllib.parse import quote

    return quote(key, safe="")


# -- Google's auth on loopback ---------------------------------------------------------------


def service_account_key(token_uri: str, *, name: str = "pipeline") -> tuple[dict[str, str], Any]:
    """A service-account key file's content (a fresh RSA key), and its public key for checking signatures."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = private.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()
    key = {
        "type": "service_account",
        "project_id": PROJECT,
        "private_key_id": uuid.uuid4().hex,
        "private_key": pem,
        "client_email": f"{name}@{PROJECT}.iam.gserviceaccount.com",
        "client_id": str(uuid.uuid4().int)[:21],
        "auth_uri": "https://accounts.google.com/o/oauth2/auth",
        "token_uri": token_uri,
    }
    return key, private.public_key()


def _b64url_decode(part: str) -> bytes:
    return base64.urlsafe_b64decode(part + "=" * (-len(part) % 4))


@dataclass
class GoogleAuthServer:
    """OAuth token endpoint for service-account JWTs, and a GCE metadata server."""

    public_keys: dict[str, Any] = field(default_factory=dict)  # client_email -> RSA public key
    tokens_issued: list[str] = field(default_factory=list)  # who got a token, in order
    _server: ThreadingHTTPServer | None = None

    @property
    def host(self) -> str:
        assert self._server is not None
        return f"127.0.0.1:{self._server.server_address[1]}"

    @property
    def token_uri(self) -> str:
        return f"http://{self.host}/token"

    def trust(self, client_email: str, public_key: Any) -> None:
        self.public_keys[client_email] = public_key

    def __enter__(self) -> GoogleAuthServer:
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._server.daemon_threads = True
        threading.Thread(target=self._server.serve_forever, args=(0.05,), daemon=True).start()
        return self

    def __exit__(self, *exc: object) -> None:
        assert self._server is not None
        self._server.shutdown()
        self._server.server_close()

    def _verify_assertion(self, assertion: str) -> str | None:
        """The service account whose key signed this JWT, or None."""
        from cryptography.exceptions import InvalidSignature
        from cryptography.hazmat.primitives import hashes
        from cryptography.hazmat.primitives.asymmetric import padding

        try:
            header, payload, signature = assertion.split(".")
            claims = json.loads(_b64url_decode(payload))
            key = self.public_keys[claims["iss"]]
            key.verify(_b64url_decode(signature), f"{header}.{payload}".encode(), padding.PKCS1v15(), hashes.SHA256())
        except (ValueError, KeyError, InvalidSignature):
            return None
        return str(claims["iss"])

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: object) -> None:
                return

            def _send(self, status: int, body: Any, content_type: str = "application/json") -> None:
                data = (json.dumps(body) if content_type == "application/json" else str(body)).encode()
                self.send_response(status)
                self.send_header("Content-Type", content_type)
                self.send_header("Metadata-Flavor", "Google")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_POST(self) -> None:
                form = parse_qs(self.rfile.read(int(self.headers.get("Content-Length") or 0)).decode())
                who = server._verify_assertion(form.get("assertion", [""])[0])
                if self.path != "/token" or who is None:
                    self._send(400, {"error": "invalid_grant", "error_description": "Invalid JWT Signature."})
                    return
                server.tokens_issued.append(who)
                self._send(200, {"access_token": f"ya29.test-{uuid.uuid4().hex}", "expires_in": 3600})

            def do_GET(self) -> None:
                path = urlsplit(self.path).path
                if self.headers.get("Metadata-Flavor") != "Google":
                    self._send(403, {"error": "Missing Metadata-Flavor: Google header"})
                elif path in ("/", ""):
                    self._send(200, "ok", "text/plain")
                elif path == "/computeMetadata/v1/project/project-id":
                    self._send(200, PROJECT, "text/plain")
                elif (account := _vm_account_path(path)) is None:
                    self._send(404, {"error": f"no metadata at {path}"})
                elif account == "":
                    self._send(200, {"email": VM_SERVICE_ACCOUNT, "aliases": ["default"], "scopes": ["cloud-platform"]})
                elif account == "email":
                    self._send(200, VM_SERVICE_ACCOUNT, "text/plain")
                elif account == "token":
                    server.tokens_issued.append(VM_SERVICE_ACCOUNT)
                    self._send(200, {"access_token": f"ya29.vm-{uuid.uuid4().hex}", "expires_in": 3600})
                else:
                    self._send(404, {"error": f"no metadata at {path}"})

        return Handler


def _vm_account_path(path: str) -> str | None:
    """What is asked of the VM's service account at ``path`` ("" for its info), or None if not about it.

    Like the real metadata server, the account answers to its alias ``default`` and to its email:
    google-auth asks by alias first and, once it has learned the email, refreshes by email.
    """
    prefix = "/computeMetadata/v1/instance/service-accounts/"
    if not path.startswith(prefix):
        return None
    account, _, rest = path[len(prefix) :].partition("/")
    if account not in ("default", VM_SERVICE_ACCOUNT):
        return None
    return rest.rstrip("/")


# -- pytest fixtures (imported by the GCS test modules) ----------------------------------------

import pytest  # noqa: E402


def anonymous_connection() -> str:
    """``google_cloud_default`` for the emulator: the provider's anonymous credentials (no key, no token)."""
    return json.dumps({"conn_type": "google_cloud_platform", "extra": {"is_anonymous": True, "project": PROJECT}})


@pytest.fixture(scope="session")
def gcs_emulator(tmp_path_factory: pytest.TempPathFactory):
    """The gcp-storage-emulator process for the session; yields its endpoint."""
    import os
    import signal

    process, endpoint = start_emulator(tmp_path_factory.mktemp("gcs") / "emulator.log")
    try:
        yield endpoint
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(timeout=10)


@pytest.fixture
def gcs_proxy(gcs_emulator: str, monkeypatch: pytest.MonkeyPatch):
    """The proxy in front of the emulator, wired as ``STORAGE_EMULATOR_HOST`` for this test."""
    with GcsProxy(gcs_emulator) as proxy:
        monkeypatch.setenv("STORAGE_EMULATOR_HOST", proxy.endpoint)
        yield proxy


def emulator_client() -> Any:
    """A client straight to whatever ``STORAGE_EMULATOR_HOST`` names (anonymous), for setting up and checking."""
    from google.auth.credentials import AnonymousCredentials
    from google.cloud import storage

    return storage.Client(project=PROJECT, credentials=AnonymousCredentials())


@pytest.fixture
def gcs_bucket(gcs_proxy: GcsProxy, monkeypatch: pytest.MonkeyPatch) -> str:
    """A fresh bucket in the emulator, with ``google_cloud_default`` set to anonymous credentials."""
    name = f"videos-{uuid.uuid4().hex[:10]}"
    emulator_client().create_bucket(name)
    monkeypatch.setenv("AIRFLOW_CONN_GOOGLE_CLOUD_DEFAULT", anonymous_connection())
    gcs_proxy.clear()
    return name


def verify_v4_signed_url(url: str, method: str, headers: dict[str, str], public_key: Any) -> bool:
    """Check a V4 signed URL as GCS does: rebuild the canonical request from what the client sends.

    The emulator serves signed URLs without checking them, so the check that
    GCS makes (signature over method, path, query, the signed headers' values)
    is made here, with the service account's public key.
    """
    import hashlib

    from cryptography.exceptions import InvalidSignature
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import padding

    split = urlsplit(url)
    pairs = split.query.split("&")
    signature = next(p.split("=", 1)[1] for p in pairs if p.startswith("X-Goog-Signature="))
    query = "&".join(p for p in pairs if not p.startswith("X-Goog-Signature="))
    params = {k: v[0] for k, v in parse_qs(split.query).items()}
    sent = {k.lower(): " ".join(str(v).split()) for k, v in {**headers, "host": split.netloc}.items()}
    names = params["X-Goog-SignedHeaders"].split(";")
    if any(name not in sent for name in names):
        return False
    canonical_headers = "".join(f"{name}:{sent[name]}\n" for name in names)
    canonical = "\n".join([method, split.path, query, canonical_headers, ";".join(names), "UNSIGNED-PAYLOAD"])
    scope = params["X-Goog-Credential"].split("/", 1)[1]
    to_sign = "\n".join(
        ["GOOG4-RSA-SHA256", params["X-Goog-Date"], scope, hashlib.sha256(canonical.encode()).hexdigest()]
    )
    try:
        public_key.verify(bytes.fromhex(signature), to_sign.encode(), padding.PKCS1v15(), hashes.SHA256())
    except InvalidSignature:
        return False
    return True
