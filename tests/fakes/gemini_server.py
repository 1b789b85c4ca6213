"""A loopback HTTP server that speaks the part of the Gemini REST API the pipeline uses.

The real ``google-genai`` SDK talks to it over HTTP (point ``base_url`` at
``server.base_url``), so tests exercise the SDK's request building, response
parsing and error classes, not a mock of them.

    with FakeGeminiServer() as server:
        server.enqueue(Reply.rate_limited(retry_after=1), Reply.analysis())
        ...  # run code with AnalysisSettings(gemini_base_url=server.base_url)
        assert server.generate_requests[0].body["generationConfig"]["responseJsonSchema"]

Endpoints: ``POST /v1beta/models/{model}:generateContent`` and ``:countTokens``,
``GET /v1beta/models/{model}`` and ``GET /v1beta/models`` (the Gemini API), the same under Vertex AI's
``/v1beta1/projects/{project}/locations/{location}/publishers/google/models/{model}``,
and ``POST /token``, an OAuth 2.0 token endpoint for service-account JWTs, so a
key file whose ``token_uri`` points here makes google-auth fetch a real bearer
token from loopback (Vertex requests then carry it).
Each generateContent request takes the next queued ``Reply``; with the queue
empty it answers with a valid analysis grounded in the transcript lines of the
prompt (``[12.3-15.0] text``), in the language the prompt asks for. Shapes follow
https://ai.google.dev/api/generate-content and the errors the API really returns
(``google.rpc`` details such as ``QuotaFailure``, ``RetryInfo``, ``ErrorInfo``).

Like today's API it refuses the retired 2.5 family with 404 NOT_FOUND
(``retired_models``), and it can play a country the API does not serve
(``location_unsupported``: 400 FAILED_PRECONDITION on every call), report
thinking and cached tokens in ``usageMetadata``, and enforce a
requests-per-window limit on generateContent the way Google does: 429
RESOURCE_EXHAUSTED with the wait only in the body's ``RetryInfo``, no
``Retry-After`` header (``rpm_limit``; ``rate_limited`` counts the refusals).

It also runs Gemini Batch API jobs with inline requests (``tests/fakes/gemini_batches.py``):
``batch_delay_seconds`` keeps a batch pending/running that long, ``batch_outcome``
decides how one ends (failed, expired...), ``enqueue_batch_poll`` and
``enqueue_batch_create`` script the answers to the next ``GET batches/{id}`` and
``batchGenerateContent`` requests, and ``batches.submissions`` counts the batches
created (each one Google would bill), so a test can assert a retry did not submit again.
"""

from __future__ import annotations

import base64
import json
import re
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from typing import Any
from urllib.parse import parse_qs, urlsplit

from tests.fakes.gemini_batches import FakeBatches
from tests.fakes.loopback import LoopbackServer

_LINE = re.compile(r"^\[(\d+(?:\.\d+)?)-(\d+(?:\.\d+)?)\] (.+)$", flags=re.MULTILINE)
_LANGUAGE = re.compile(r"language code: ([a-z]{2,3})")
_PATH = re.compile(
    r"^/(?P<version>v1\w*)/(?:projects/(?P<project>[^/]+)/locations/(?P<location>[^/]+)/publishers/google/)?"
    r"models/(?P<model>[^/:]+):(?P<action>\w+)$"
)
# The Batch API's own resources: GET batches/{id}, GET batches (list), POST batches/{id}:cancel.
_BATCH_PATH = re.compile(r"^/(?P<version>v1\w*)/batches(?:/(?P<id>[^/:]+))?(?::(?P<action>\w+))?$")
# Vertex AI looks publisher models up without a project (GET v1beta1/publishers/google/models/x;
# the region is the host's, {location}-aiplatform.googleapis.com).
_GET_PATH = re.compile(
    r"^/(?P<version>v1\w*)/(?:projects/(?P<project>[^/]+)/locations/(?P<location>[^/]+)/)?"
    r"(?P<publisher>publishers/google/)?models(?:/(?P<model>[^/:]+))?$"
)
# Shut down on 2026-12-01: the API answers 404 NOT_FOUND for them.
RETIRED_MODELS = frozenset({"gemini-2.5-flash", "gemini-2.5-pro", "gemini-2.5-flash-lite", "gemini-2.0-flash"})
# What models.list answers (any other id that is not retired is served too).
LISTED_MODELS = ("gemini-3.1-flash-lite", "gemini-3.5-flash", "gemini-3.1-pro-preview")
ACCESS_TOKEN = "ya29.fake-loopback-access-token"


@dataclass(frozen=True)
class RecordedRequest:
    """One request as the server received it."""

    method: str
    path: str
    model: str
    action: str  # "generateContent", "countTokens", "get", "list", "batchGenerateContent", "batchGet"...
    headers: dict[str, str]
    body: dict[str, Any]
    project: str | None = None  # Vertex AI paths only
    location: str | None = None

    @property
    def api_key(self) -> str | None:
        return self.headers.get("x-goog-api-key")

    @property
    def bearer_token(self) -> str | None:
        auth = self.headers.get("authorization", "")
        return auth.removeprefix("Bearer ") if auth.startswith("Bearer ") else None

    @property
    def images(self) -> list[tuple[str, bytes]]:
        """(MIME type, bytes) of every inline image part, in order."""
        return [
            # The API accepts proto field names in either case; the SDK sends snake_case.
            (p["inlineData"].get("mimeType") or p["inlineData"]["mime_type"], _b64(p["inlineData"]["data"]))
            for c in self.body.get("contents", [])
            for p in c.get("parts", [])
            if "inlineData" in p
        ]

    @property
    def prompt_text(self) -> str:
        """The text of all user parts, joined."""
        return "\n".join(p.get("text", "") for c in self.body.get("contents", []) for p in c.get("parts", []))

    @property
    def system_text(self) -> str:
        return "\n".join(p.get("text", "") for p in self.body.get("systemInstruction", {}).get("parts", []))

    @property
    def generation_config(self) -> dict[str, Any]:
        return dict(self.body.get("generationConfig", {}))


def _b64(data: str) -> bytes:
    # The API takes standard or URL-safe base64, padded or not; google-genai sends URL-safe unpadded.
    return base64.urlsafe_b64decode(data.replace("+", "-").replace("/", "_") + "=" * (-len(data) % 4))


def transcript_lines(prompt: str) -> list[tuple[float, float, str]]:
    """The ``[start-end] text`` lines of a prompt."""
    return [(float(a), float(b), text.strip()) for a, b, text in _LINE.findall(prompt)]


def analysis_from_prompt(prompt: str, system: str = "") -> dict[str, Any]:
    """A plausible analysis that only uses what the prompt's transcript says.

    It is valid against the model response schema and grounded: chapters start
    and end on line timestamps, quotes are whole lines.
    """
    lines = transcript_lines(prompt)
    match = _LANGUAGE.search(system) or _LANGUAGE.search(prompt)
    language = match.group(1) if match else "en"
    texts = [text for _, _, text in lines]
    words = [w.strip(".,!?;:«»\"'").lower() for text in texts for w in text.split()]
    long_words = sorted({w for w in words if len(w) > 6}, key=lambda w: (-words.count(w), w))[:4]
    half = max(1, len(lines) // 2)
    groups = [lines[:half], lines[half:]] if len(lines) > 1 else [lines]
    chapters = [
        {
            "start": group[0][0],
            "end": group[-1][1],
            "title": " ".join(group[0][2].split()[:4]),
            "summary": group[0][2],
        }
        for group in groups
        if group
    ]
    return {
        "title_suggestion": " ".join(texts[0].split()[:6]) if texts else "",
        "summary": " ".join(texts[:2]),
        "key_points": texts[:3],
        "topics": long_words[:2],
        "tags": long_words,
        "entities": {"people": [], "organizations": [], "places": []},
        "chapters": chapters,
        "action_items": [],
        "quotes": [{"text": lines[0][2], "start": lines[0][0]}] if lines else [],
        "language": language,
    }


def _usage(prompt_tokens: int, output_tokens: int, thoughts: int = 0, cached: int = 0) -> dict[str, int]:
    usage = {
        "promptTokenCount": prompt_tokens,
        "candidatesTokenCount": output_tokens,
        "totalTokenCount": prompt_tokens + output_tokens + thoughts,
    }
    if thoughts:
        usage["thoughtsTokenCount"] = thoughts
    if cached:
        usage["cachedContentTokenCount"] = min(cached, prompt_tokens)
    return usage


def _error(code: int, status: str, message: str, details: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    error: dict[str, Any] = {"code": code, "message": message, "status": status}
    if details:
        error["details"] = details
    return {"error": error}


@dataclass(frozen=True)
class Reply:
    """One scripted answer: a status, headers, and a body or a function of the request."""

    status: int = 200
    body: dict[str, Any] | str | Callable[[RecordedRequest], dict[str, Any]] | None = None
    headers: dict[str, str] = field(default_factory=dict)

    # -- successful answers -------------------------------------------------

    @classmethod
    def analysis(
        cls, data: dict[str, Any] | None = None, *, update: dict[str, Any] | None = None, output_tokens: int = 0
    ) -> Reply:
        """A candidate whose text is ``data`` as JSON, by default derived from the request's transcript.

        ``update`` overrides top-level fields of the derived analysis (e.g. chapters out of range).
        """

        def build(request: RecordedRequest) -> dict[str, Any]:
            payload = dict(data) if data is not None else analysis_from_prompt(request.prompt_text, request.system_text)
            payload.update(update or {})
            return _candidate(json.dumps(payload, ensure_ascii=False), request, output_tokens=output_tokens)

        return cls(body=build)

    @classmethod
    def text(cls, text: str) -> Reply:
        """A candidate with arbitrary text, e.g. invalid JSON."""
        return cls(body=lambda request: _candidate(text, request))

    # -- answers the pipeline must refuse or retry -------------------------

    @classmethod
    def blocked_prompt(cls, reason: str = "PROHIBITED_CONTENT") -> Reply:
        """HTTP 200 with no candidates: the prompt itself was blocked."""
        return cls(body=lambda request: {"promptFeedback": {"blockReason": reason}, "usageMetadata": _usage(10, 0)})

    @classmethod
    def safety_stop(cls, finish_reason: str = "SAFETY") -> Reply:
        """HTTP 200 with a candidate stopped by the safety filters before any text."""
        return cls(
            body=lambda request: {
                "candidates": [
                    {
                        "finishReason": finish_reason,
                        "index": 0,
                        "safetyRatings": [
                            {"category": "HARM_CATEGORY_DANGEROUS_CONTENT", "probability": "HIGH", "blocked": True}
                        ],
                    }
                ],
                "usageMetadata": _usage(10, 0),
            }
        )

    @classmethod
    def rate_limited(cls, *, retry_after: float | None = None, retry_delay: str | None = None) -> Reply:
        """429 for a per-minute limit; optional ``Retry-After`` header and ``RetryInfo.retryDelay`` (``"7s"``)."""
        details: list[dict[str, Any]] = [
            {
                "@type": "type.googleapis.com/google.rpc.QuotaFailure",
                "violations": [
                    {
                        "quotaMetric": "generativelanguage.googleapis.com/generate_content_free_tier_requests",
                        "quotaId": "GenerateRequestsPerMinutePerProjectPerModel-FreeTier",
                        "quotaDimensions": {"location": "global", "model": "gemini-2.5-flash"},
                        "quotaValue": "10",
                    }
                ],
            }
        ]
        if retry_delay is not None:
            details.append({"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": retry_delay})
        headers = {"Retry-After": f"{retry_after:g}"} if retry_after is not None else {}
        return cls(
            status=429,
            headers=headers,
            body=_error(429, "RESOURCE_EXHAUSTED", "You exceeded your current quota, please retry later.", details),
        )

    @classmethod
    def quota_exhausted(cls) -> Reply:
        """429 for the per-day quota: nothing helps until tomorrow."""
        details = [
            {
                "@type": "type.googleapis.com/google.rpc.QuotaFailure",
                "violations": [
                    {
                        "quotaMetric": "generativelanguage.googleapis.com/generate_content_free_tier_requests",
                        "quotaId": "GenerateRequestsPerDayPerProjectPerModel-FreeTier",
                        "quotaDimensions": {"location": "global", "model": "gemini-2.5-flash"},
                        "quotaValue": "250",
                    }
                ],
            },
            {"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": "52s"},
        ]
        message = (
            "You exceeded your current quota, please check your plan and billing details. "
            "For more information on this error, head to: https://ai.google.dev/gemini-api/docs/rate-limits."
        )
        return cls(status=429, body=_error(429, "RESOURCE_EXHAUSTED", message, details))

    @classmethod
    def server_error(cls, code: int = 500) -> Reply:
        statuses = {
            500: ("INTERNAL", "An internal error has occurred."),
            503: ("UNAVAILABLE", "The model is overloaded. Please try again later."),
        }
        status, message = statuses.get(code, ("UNKNOWN", "Server error."))
        return cls(status=code, body=_error(code, status, message))

    @classmethod
    def model_not_found(cls, model: str) -> Reply:
        """What a shut-down model answers."""
        message = f"models/{model} is not found for API version v1beta, or is not supported for generateContent."
        return cls(status=404, body=_error(404, "NOT_FOUND", message))

    @classmethod
    def location_unsupported(cls) -> Reply:
        """What the Gemini API answers from a country it does not serve."""
        return cls(
            status=400, body=_error(400, "FAILED_PRECONDITION", "User location is not supported for the API use.")
        )

    @classmethod
    def per_minute_limit(cls, retry_seconds: float, limit: int) -> Reply:
        """429 for a per-minute limit as the real API sends it: the wait in RetryInfo, no Retry-After header."""
        details = [
            {
                "@type": "type.googleapis.com/google.rpc.QuotaFailure",
                "violations": [
                    {
                        "quotaMetric": "generativelanguage.googleapis.com/generate_content_paid_tier_requests",
                        "quotaId": "GenerateRequestsPerMinutePerProjectPerModel",
                        "quotaValue": str(limit),
                    }
                ],
            },
            {"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": f"{max(1, round(retry_seconds))}s"},
        ]
        message = "You exceeded your current quota, please check your plan and billing details."
        return cls(status=429, body=_error(429, "RESOURCE_EXHAUSTED", message, details))

    @classmethod
    def invalid_key(cls) -> Reply:
        details = [
            {
                "@type": "type.googleapis.com/google.rpc.ErrorInfo",
                "reason": "API_KEY_INVALID",
                "domain": "googleapis.com",
                "metadata": {"service": "generativelanguage.googleapis.com"},
            }
        ]
        message = "API key not valid. Please pass a valid API key."
        return cls(status=400, body=_error(400, "INVALID_ARGUMENT", message, details))

    @classmethod
    def permission_denied(cls) -> Reply:
        message = "Method doesn't allow unregistered callers. Use an API key or another consumer identity."
        return cls(status=403, body=_error(403, "PERMISSION_DENIED", message))


def _candidate(text: str, request: RecordedRequest, *, output_tokens: int = 0) -> dict[str, Any]:
    return {
        "candidates": [{"content": {"parts": [{"text": text}], "role": "model"}, "finishReason": "STOP", "index": 0}],
        "usageMetadata": _usage(
            max(1, len(request.prompt_text) // 4),
            output_tokens or max(1, len(text) // 4),
            int(request.headers.get("x-fake-thoughts", "0")),
            int(request.headers.get("x-fake-cached", "0")),
        ),
        "modelVersion": request.model,
        "responseId": "fake-response",
    }


class FakeGeminiServer(LoopbackServer):
    """A scriptable Gemini endpoint on 127.0.0.1 and a free port; use as a context manager.

    :param api_key: when set, requests carrying another key get the real 400
        ``API_KEY_INVALID`` answer, as Google would give.
    """

    def __init__(
        self,
        *,
        api_key: str | None = None,
        retired_models: frozenset[str] = RETIRED_MODELS,
        location_unsupported: bool = False,
        thoughts_tokens: int = 0,
        cached_tokens: int = 0,
        rpm_limit: int | None = None,
        rpm_window_seconds: float = 60.0,
        batch_delay_seconds: float = 0.0,
        batch_outcome: Callable[[list[dict[str, Any]]], str] | None = None,
    ):
        super().__init__()
        self.thread_name = "fake-gemini"
        self.api_key = api_key
        self.retired_models = retired_models
        self.location_unsupported = location_unsupported
        self.thoughts_tokens = thoughts_tokens
        self.cached_tokens = cached_tokens
        self.rpm_limit = rpm_limit
        self.rpm_window_seconds = rpm_window_seconds
        self.rate_limited = 0  # generateContent requests refused for the per-window limit
        self._served_at: deque[float] = deque()  # arrival times of accepted generateContent calls
        self.token_requests: list[dict[str, list[str]]] = []
        # countTokens answers: None counts like the real API would (about 4
        # characters a token); a Reply scripts an error instead.
        self.count_tokens_reply: Reply | None = None
        self.tokens_per_char: float = 0.25
        self._replies: deque[Reply] = deque()
        self._requests: list[RecordedRequest] = []
        # Re-entrant: a batch that ends while a request is being answered builds its answers
        # from the reply queue, under the same lock.
        self._lock = threading.RLock()
        self.batches = FakeBatches(self._batch_answer)
        self.batches.delay_seconds = batch_delay_seconds
        self.batches.outcome = batch_outcome
        self._batch_poll_replies: deque[Reply] = deque()
        self._batch_create_replies: deque[Reply] = deque()
        self.batch_requests: list[RecordedRequest] = []  # every inline request of every batch, as sent

    def handler_class(self) -> type[BaseHTTPRequestHandler]:
        return _handler_for(self)

    @property
    def base_url(self) -> str:
        return self.root_url

    # -- scripting and inspection -------------------------------------------

    def enqueue(self, *replies: Reply) -> None:
        """Answer the next generateContent requests with these, in order."""
        with self._lock:
            self._replies.extend(replies)

    def enqueue_batch_poll(self, *replies: Reply) -> None:
        """Answer the next ``GET batches/{id}`` requests with these (errors, say), in order."""
        with self._lock:
            self._batch_poll_replies.extend(replies)

    def enqueue_batch_create(self, *replies: Reply) -> None:
        """Answer the next ``batchGenerateContent`` requests with these instead of creating a batch."""
        with self._lock:
            self._batch_create_replies.extend(replies)

    @property
    def pending_replies(self) -> int:
        with self._lock:
            return len(self._replies)

    @property
    def requests(self) -> list[RecordedRequest]:
        with self._lock:
            return list(self._requests)

    @property
    def generate_requests(self) -> list[RecordedRequest]:
        """Online generateContent calls (a batch's inline requests are in ``batch_requests``)."""
        return [r for r in self.requests if r.action == "generateContent"]

    def _batch_answer(self, body: dict[str, Any], model: str) -> dict[str, Any]:
        """One inline request's entry in a finished batch: the next queued reply, as an online call gets."""
        headers = {"x-fake-thoughts": str(self.thoughts_tokens), "x-fake-cached": str(self.cached_tokens)}
        request = RecordedRequest(
            method="POST", path="(batch)", model=model, action="generateContent", headers=headers, body=body
        )
        with self._lock:
            self.batch_requests.append(request)
            reply = self._replies.popleft() if self._replies else Reply.analysis()
        answer = reply.body(request) if callable(reply.body) else reply.body
        if reply.status == 200 and isinstance(answer, dict):
            return {"response": answer}
        # A request that failed inside a batch carries a google.rpc.Status instead of a response.
        error = answer.get("error", {}) if isinstance(answer, dict) else {}
        return {"error": {"code": error.get("code", reply.status), "message": error.get("message", str(answer))}}

    # -- request handling ---------------------------------------------------

    def _record(self, request: RecordedRequest) -> Reply:
        with self._lock:
            self._requests.append(request)
            if request.project is not None:
                # Vertex AI authenticates with the OAuth token, never an API key.
                if request.bearer_token != ACCESS_TOKEN:
                    return Reply(
                        status=401,
                        body=_error(401, "UNAUTHENTICATED", "Request had invalid authentication credentials."),
                    )
            elif self.api_key is not None and request.api_key != self.api_key:
                return Reply.invalid_key()
            if self.location_unsupported and request.project is None:
                return Reply.location_unsupported()
            if request.model in self.retired_models:
                return Reply.model_not_found(request.model)
            if request.action.startswith("batch"):
                return self._batch_reply(request)
            if request.action == "list":
                names = [m for m in LISTED_MODELS if m not in self.retired_models]
                return Reply(body={"models": [_model_resource(m) for m in names]})
            if request.action == "get":
                return Reply(body=_model_resource(request.model))
            if request.action == "countTokens":
                if self.count_tokens_reply is not None:
                    return self.count_tokens_reply
                tokens = max(1, int(len(request.prompt_text) * self.tokens_per_char))
                return Reply(body={"totalTokens": tokens})
            if request.action != "generateContent":
                return Reply(status=404, body=_error(404, "NOT_FOUND", f"Unknown action {request.action}."))
            if self.rpm_limit is not None:
                now = time.monotonic()
                while self._served_at and self._served_at[0] <= now - self.rpm_window_seconds:
                    self._served_at.popleft()
                if len(self._served_at) >= self.rpm_limit:
                    self.rate_limited += 1
                    wait = self._served_at[0] + self.rpm_window_seconds - now
                    return Reply.per_minute_limit(wait, self.rpm_limit)
                self._served_at.append(now)
            return self._replies.popleft() if self._replies else Reply.analysis()

    def _batch_reply(self, request: RecordedRequest) -> Reply:
        """The Batch API's answers (called with the lock held)."""
        if request.action == "batchGenerateContent":
            if self._batch_create_replies:
                return self._batch_create_replies.popleft()
            return Reply(body=self.batches.create(request.model, request.body))
        if request.action == "batchList":
            query = request.body.get("query", {})
            size = int((query.get("pageSize") or ["50"])[0])
            return Reply(body=self.batches.list(size, (query.get("pageToken") or [None])[0]))
        name = f"batches/{request.body.get('id', '')}"
        if request.action == "batchGet" and self._batch_poll_replies:
            return self._batch_poll_replies.popleft()
        if request.action == "batchCancel":
            found = self.batches.cancel(name)
            return Reply(body={}) if found else Reply(status=400, body=_error(400, "FAILED_PRECONDITION", "Done."))
        operation = self.batches.get(name)
        if operation is None:
            return Reply(status=404, body=_error(404, "NOT_FOUND", f"{name} not found."))
        return Reply(body=operation)


def _model_resource(model: str) -> dict[str, Any]:
    return {
        "name": f"models/{model}",
        "baseModelId": model,
        "version": "001",
        "displayName": model,
        "inputTokenLimit": 1_048_576,
        "outputTokenLimit": 65_536,
        "supportedGenerationMethods": ["generateContent", "countTokens", "batchGenerateContent"],
        "thinking": True,
    }


def _handler_for(fake: FakeGeminiServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def _batch_request(self, method: str, url: Any) -> bool:
            """Route a Batch API resource request; False when the path is not one."""
            match = _BATCH_PATH.match(url.path)
            if not match:
                return False
            headers = {k.lower(): v for k, v in self.headers.items()}
            query = parse_qs(url.query)
            if "key" in query:
                headers.setdefault("x-goog-api-key", query["key"][0])
            action = {"GET": "batchGet" if match["id"] else "batchList", "POST": "batchCancel"}[method]
            if method == "POST":
                length = int(self.headers.get("Content-Length") or 0)
                if length:  # a cancel's body is empty JSON; read it so the connection stays usable
                    self.rfile.read(length)
            body = {"id": match["id"], "query": query}
            request = RecordedRequest(method=method, path=url.path, model="", action=action, headers=headers, body=body)
            self._send(fake._record(request), request)
            return True

        def do_GET(self) -> None:
            url = urlsplit(self.path)
            if self._batch_request("GET", url):
                return
            match = _GET_PATH.match(url.path)
            if not match:
                self._send(Reply(status=404, body=_error(404, "NOT_FOUND", f"No route for {url.path}.")), None)
                return
            headers = {k.lower(): v for k, v in self.headers.items()}
            if "key" in (query := parse_qs(url.query)):
                headers.setdefault("x-goog-api-key", query["key"][0])
            request = RecordedRequest(
                method="GET",
                path=url.path,
                model=match["model"] or "",
                action="get" if match["model"] else "list",
                headers=headers,
                body={},
                # "" marks a Vertex request without a project in its path (it still needs the token).
                project=match["project"] or ("" if match["publisher"] else None),
                location=match["location"],
            )
            self._send(fake._record(request), request)

        def do_POST(self) -> None:
            url = urlsplit(self.path)
            if self._batch_request("POST", url):
                return
            match = _PATH.match(url.path)
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(length) if length else b""
            if url.path == "/token":
                form = parse_qs(raw.decode())
                with fake._lock:
                    fake.token_requests.append(form)
                token = {"access_token": ACCESS_TOKEN, "expires_in": 3600, "token_type": "Bearer"}
                self._send(Reply(body=token), None)
                return
            if not match:
                self._send(Reply(status=404, body=_error(404, "NOT_FOUND", f"No route for {url.path}.")), None)
                return
            headers = {k.lower(): v for k, v in self.headers.items()}
            if "key" in (query := parse_qs(url.query)):
                headers.setdefault("x-goog-api-key", query["key"][0])
            # The server's usage settings travel with the request to the reply builders.
            headers["x-fake-thoughts"] = str(fake.thoughts_tokens)
            headers["x-fake-cached"] = str(fake.cached_tokens)
            request = RecordedRequest(
                method="POST",
                path=url.path,
                model=match["model"],
                action=match["action"],
                headers=headers,
                body=json.loads(raw or b"{}"),
                project=match["project"],
                location=match["location"],
            )
            self._send(fake._record(request), request)

        def _send(self, reply: Reply, request: RecordedRequest | None) -> None:
            body = reply.body(request) if callable(reply.body) and request is not None else reply.body
            payload = body.encode() if isinstance(body, str) else json.dumps(body or {}, ensure_ascii=False).encode()
            self.send_response(reply.status)
            self.send_header("Content-Type", "application/json; charset=UTF-8")
            self.send_header("Content-Length", str(len(payload)))
            for name, value in reply.headers.items():
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(payload)

        def log_message(self, format: str, *args: Any) -> None:
            pass  # keep test output clean; requests are recorded instead

    return Handler
