"""A loopback HTTP server that speaks the OpenAI chat/completions API as vLLM, Ollama and OpenRouter do.

    with FakeOpenAIServer(api_key="sk-test", json_schema=False) as server:
        server.enqueue(ChatReply.rate_limited(retry_after=1), ChatReply.analysis())
        ...  # OpenAICompatibleHook(base_url=server.base_url, ...)
        assert server.chat_requests[-1].response_format["type"] == "json_object"

Endpoint: ``POST /v1/chat/completions``. Each request takes the next queued
``ChatReply``; with the queue empty it answers with a valid analysis grounded in
the transcript lines of the prompt (see ``analysis_from_prompt``). With
``json_schema=False`` it refuses ``response_format: json_schema`` with the 400
that servers without structured outputs give, so the fallback is exercised.
Error bodies follow OpenAI's ``{"error": {"message", "type", "param", "code"}}``.
"""

from __future__ import annotations

import base64
import json
import threading
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from typing import Any
from urllib.parse import urlsplit

from tests.fakes.gemini_server import analysis_from_prompt
from tests.fakes.loopback import LoopbackServer


@dataclass(frozen=True)
class ChatRequest:
    path: str
    headers: dict[str, str]
    body: dict[str, Any]

    @property
    def bearer_token(self) -> str | None:
        auth = self.headers.get("authorization", "")
        return auth.removeprefix("Bearer ") if auth.startswith("Bearer ") else None

    def _content(self, role: str) -> list[Any]:
        return [m.get("content") for m in self.body.get("messages", []) if m.get("role") == role]

    @property
    def system_text(self) -> str:
        return "\n".join(c for c in self._content("system") if isinstance(c, str))

    @property
    def prompt_text(self) -> str:
        texts: list[str] = []
        for content in self._content("user"):
            if isinstance(content, str):
                texts.append(content)
            else:
                texts.extend(p.get("text", "") for p in content if p.get("type") == "text")
        return "\n".join(texts)

    @property
    def images(self) -> list[tuple[str, bytes]]:
        """(MIME type, bytes) of every image_url data URL, in order."""
        found = []
        for content in self._content("user"):
            for part in content if isinstance(content, list) else []:
                if part.get("type") == "image_url":
                    header, data = part["image_url"]["url"].split(",", 1)
                    found.append((header.removeprefix("data:").removesuffix(";base64"), base64.b64decode(data)))
        return found

    @property
    def response_format(self) -> dict[str, Any]:
        return dict(self.body.get("response_format") or {})


def _error(message: str, *, type_: str, code: str | None = None, param: str | None = None) -> dict[str, Any]:
    return {"error": {"message": message, "type": type_, "param": param, "code": code}}


def _completion(request: ChatRequest, text: str, *, finish_reason: str = "stop") -> dict[str, Any]:
    prompt_tokens = max(1, (len(request.prompt_text) + len(request.system_text)) // 4)
    completion_tokens = max(1, len(text) // 4)
    return {
        "id": "chatcmpl-fake",
        "object": "chat.completion",
        "created": 1700000000,
        "model": request.body.get("model", ""),
        "choices": [{"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": finish_reason}],
        "usage": {
            "prompt_tokens": prompt_tokens,
            "completion_tokens": completion_tokens,
            "total_tokens": prompt_tokens + completion_tokens,
        },
    }


@dataclass(frozen=True)
class ChatReply:
    status: int = 200
    body: dict[str, Any] | str | Callable[[ChatRequest], dict[str, Any]] | None = None
    headers: dict[str, str] = field(default_factory=dict)

    @classmethod
    def analysis(cls, *, update: dict[str, Any] | None = None, fenced: bool = False) -> ChatReply:
        """A grounded analysis of the request's transcript; ``fenced`` wraps it in a Markdown code fence."""

        def build(request: ChatRequest) -> dict[str, Any]:
            payload = analysis_from_prompt(request.prompt_text, request.system_text)
            payload.update(update or {})
            text = json.dumps(payload, ensure_ascii=False)
            return _completion(request, f"```json\n{text}\n```" if fenced else text)

        return cls(body=build)

    @classmethod
    def text(cls, text: str) -> ChatReply:
        return cls(body=lambda request: _completion(request, text))

    @classmethod
    def content_filter(cls) -> ChatReply:
        return cls(body=lambda request: _completion(request, "", finish_reason="content_filter"))

    @classmethod
    def rate_limited(cls, *, retry_after: float | None = None) -> ChatReply:
        headers = {"Retry-After": f"{retry_after:g}"} if retry_after is not None else {}
        body = _error("Rate limit reached for requests", type_="requests", code="rate_limit_exceeded")
        return cls(status=429, headers=headers, body=body)

    @classmethod
    def insufficient_quota(cls) -> ChatReply:
        message = "You exceeded your current quota, please check your plan and billing details."
        return cls(status=429, body=_error(message, type_="insufficient_quota", code="insufficient_quota"))

    @classmethod
    def server_error(cls, code: int = 503) -> ChatReply:
        return cls(status=code, body=_error("The server is overloaded or loading the model.", type_="server_error"))

    @classmethod
    def model_not_found(cls) -> ChatReply:
        body = _error("The model does not exist.", type_="invalid_request_error", code="model_not_found")
        return cls(status=404, body=body)

    @classmethod
    def content_policy(cls) -> ChatReply:
        message = "Your request was rejected as a result of our safety system."
        return cls(status=400, body=_error(message, type_="invalid_request_error", code="content_policy_violation"))


class FakeOpenAIServer(LoopbackServer):
    """A scriptable OpenAI-compatible endpoint on 127.0.0.1; ``base_url`` ends in ``/v1``.

    :param api_key: when set, requests without ``Authorization: Bearer <key>`` get 401.
    :param json_schema: False to refuse ``response_format: json_schema`` like servers without it.
    """

    def __init__(
        self, *, api_key: str | None = None, json_schema: bool = True, models: tuple[str, ...] = ("qwen2.5:14b",)
    ):
        super().__init__()
        self.thread_name = "fake-openai"
        self.api_key = api_key
        self.json_schema = json_schema
        self.models = models  # what GET /v1/models lists (the preflight's check)
        self._replies: deque[ChatReply] = deque()
        self._requests: list[ChatRequest] = []
        self._lock = threading.Lock()

    def handler_class(self) -> type[BaseHTTPRequestHandler]:
        return _handler_for(self)

    @property
    def base_url(self) -> str:
        return self.root_url + "/v1"

    def enqueue(self, *replies: ChatReply) -> None:
        with self._lock:
            self._replies.extend(replies)

    @property
    def chat_requests(self) -> list[ChatRequest]:
        with self._lock:
            return list(self._requests)

    def _answer(self, request: ChatRequest) -> ChatReply:
        with self._lock:
            self._requests.append(request)
            if self.api_key is not None and request.bearer_token != self.api_key:
                body = _error("Incorrect API key provided.", type_="invalid_request_error", code="invalid_api_key")
                return ChatReply(status=401, body=body)
            if not self.json_schema and request.response_format.get("type") == "json_schema":
                message = "response_format.type 'json_schema' is not supported; use 'json_object' or 'text'"
                body = _error(message, type_="invalid_request_error", param="response_format")
                return ChatReply(status=400, body=body)
            return self._replies.popleft() if self._replies else ChatReply.analysis()


def _handler_for(fake: FakeOpenAIServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_GET(self) -> None:
            path = urlsplit(self.path).path
            if path != "/v1/models":
                self._send(ChatReply(status=404, body=_error(f"No route {path}", type_="not_found")), None)
                return
            auth = self.headers.get("Authorization", "")
            if fake.api_key is not None and auth != f"Bearer {fake.api_key}":
                body = _error("Incorrect API key provided.", type_="invalid_request_error", code="invalid_api_key")
                self._send(ChatReply(status=401, body=body), None)
                return
            models = [{"id": m, "object": "model", "owned_by": "loopback"} for m in fake.models]
            self._send(ChatReply(body={"object": "list", "data": models}), None)

        def do_POST(self) -> None:
            path = urlsplit(self.path).path
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(length) if length else b""
            if path != "/v1/chat/completions":
                self._send(ChatReply(status=404, body=_error(f"No route {path}", type_="not_found")), None)
                return
            headers = {k.lower(): v for k, v in self.headers.items()}
            request = ChatRequest(path=path, headers=headers, body=json.loads(raw or b"{}"))
            self._send(fake._answer(request), request)

        def _send(self, reply: ChatReply, request: ChatRequest | None) -> None:
            body = reply.body(request) if callable(reply.body) and request is not None else reply.body
            payload = body.encode() if isinstance(body, str) else json.dumps(body or {}, ensure_ascii=False).encode()
            self.send_response(reply.status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(payload)))
            for name, value in reply.headers.items():
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(payload)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    return Handler
