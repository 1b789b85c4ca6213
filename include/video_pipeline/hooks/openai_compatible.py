"""Self-hosted or third-party models behind an OpenAI-compatible ``/chat/completions`` API.

vLLM, Ollama, LM Studio, llama.cpp's server and OpenRouter all speak it. The
answer is asked for with a JSON-schema ``response_format`` (constrained
decoding where the server has it); a server that refuses ``json_schema`` is
asked again with ``json_object`` and the schema in the system prompt, and the
hook remembers that for the rest of its calls. Whatever comes back goes
through the same validation, grounding and retries as Gemini's answers.

=====================================  ====================================================
answer                                 what happens
=====================================  ====================================================
429, 408, 5xx, connection refused      backoff with jitter, ``Retry-After`` honoured
429 ``insufficient_quota``, 402        ``QuotaExhausted``: the video waits for the next run
401, 403, 404                          ``PermanentError`` (the key never appears in it)
``content_filter`` finish or 400       ``InputRejected(CONTENT_BLOCKED)``
content-policy error
=====================================  ====================================================

``httpx`` (already installed with Airflow) does the HTTP; the ``openai``
package would add nothing the pipeline uses.
"""

from __future__ import annotations

import base64
import copy
import json
import logging
import os
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Literal

from include.video_pipeline.core.analysis import image_mime_type
from include.video_pipeline.core.errors import (
    InputRejected,
    PermanentError,
    PipelineError,
    QuotaExhausted,
    RejectReason,
)
from include.video_pipeline.hooks.llm_base import (
    MODEL_UNAVAILABLE,
    PROVIDER_AUTH,
    PROVIDER_MISCONFIGURED,
    PROVIDER_UNREACHABLE,
    CallRecord,
    ModelHook,
    ProviderUnavailable,
    Retryable,
    parse_retry_after,
    redact,
)

if TYPE_CHECKING:
    import httpx

log = logging.getLogger(__name__)

API_KEY_ENV_VAR = "OPENAI_API_KEY"
StructuredMode = Literal["json_schema", "json_object"]

_POLICY_CODES = frozenset({"content_filter", "content_policy_violation", "moderation_blocked"})


class _HttpError(Exception):
    def __init__(self, response: httpx.Response):
        super().__init__(f"HTTP {response.status_code}")
        self.response = response
        try:
            body = response.json()
        except ValueError:
            body = {}
        error = body.get("error") if isinstance(body, dict) else None
        if isinstance(error, str):  # llama.cpp and some proxies
            error = {"message": error}
        self.error: dict[str, Any] = error if isinstance(error, dict) else {}
        self.message = str(self.error.get("message") or response.text[:300] or response.reason_phrase)
        self.code = str(self.error.get("code") or self.error.get("type") or "")


def _schema_for_openai(schema: dict[str, Any]) -> dict[str, Any]:
    # propertyOrdering is Gemini's; strict JSON-schema validators elsewhere reject unknown keywords.
    cleaned = copy.deepcopy(schema)
    cleaned.pop("propertyOrdering", None)
    return cleaned


class OpenAICompatibleHook(ModelHook):
    """Calls an OpenAI-compatible chat/completions endpoint and returns validated JSON.

    The key (optional: local servers need none) is the password of the Airflow
    connection ``openai_conn_id``, else the environment variable ``OPENAI_API_KEY``.
    The base URL is ``base_url``, else the connection's host (e.g. ``http://ollama:11434/v1``).

    :param openai_conn_id: Airflow connection holding the key and, optionally, the URL.
    :param model: the model as the server names it (``qwen2.5:14b``, ``meta-llama/Llama-3.1-8B-Instruct``).
    :param base_url: the API root, up to and including ``/v1``.
    :param kwargs: retries, backoff, timeout, prices and ``sleep``: see ``ModelHook``.
    """

    conn_name_attr = "openai_conn_id"
    default_conn_name = "openai_default"
    conn_type = "generic"
    hook_name = "OpenAI-compatible model server"
    provider_label = "OpenAI-compatible"

    def __init__(
        self,
        openai_conn_id: str = default_conn_name,
        *,
        model: str,
        base_url: str | None = None,
        **kwargs: Any,
    ):
        super().__init__(model=model, **kwargs)
        self.openai_conn_id = openai_conn_id
        self.base_url = base_url
        self.structured_mode: StructuredMode = "json_schema"
        self._client: httpx.Client | None = None
        self._api_key: str | None = None
        self._conn: Any = None
        self._conn_loaded = False

    # -- configuration ---------------------------------------------------------

    def _connection(self) -> Any:
        if not self._conn_loaded:
            self._conn_loaded = True
            try:
                self._conn = self.get_connection(self.openai_conn_id)
            except Exception as exc:
                # No connection (or no Airflow context): the setting and the
                # environment are enough for a local server.
                log.debug("No usable Airflow connection %r (%s)", self.openai_conn_id, type(exc))
        return self._conn

    def get_api_key(self) -> str | None:
        conn = self._connection()
        if conn is not None:
            key = conn.password or conn.extra_dejson.get("api_key")
            if key:
                return str(key).strip()
        return os.environ.get(API_KEY_ENV_VAR, "").strip() or None

    def resolve_base_url(self) -> str:
        url = self.base_url
        conn = self._connection()
        if not url and conn is not None and conn.host:
            host = str(conn.host)
            url = host if "://" in host else f"{conn.schema or 'http'}://{host}{f':{conn.port}' if conn.port else ''}"
        if not url:
            raise ProviderUnavailable(
                PROVIDER_MISCONFIGURED,
                "No OpenAI-compatible base URL: set VIDEO_PIPELINE_OPENAI_BASE_URL (e.g. http://ollama:11434/v1) "
                f"or the host of Airflow connection {self.openai_conn_id!r}",
            )
        return url.rstrip("/")

    def get_conn(self) -> httpx.Client:
        if self._client is None:
            import httpx

            headers = {"Content-Type": "application/json"}
            self._api_key = self.get_api_key()
            if self._api_key:
                headers["Authorization"] = f"Bearer {self._api_key}"
            self._client = httpx.Client(base_url=self.resolve_base_url(), headers=headers, timeout=self.timeout_seconds)
        return self._client

    # -- calls -------------------------------------------------------------------

    def preflight(self) -> str:
        """The server answers, takes the key and serves the model (``GET /models``, free)."""
        client = self.get_conn()

        def list_models() -> Any:
            response = client.get("/models")
            if response.status_code >= 400:
                raise _HttpError(response)
            return response

        try:
            response = self.call_with_retries(list_models)
        except ProviderUnavailable:
            raise
        except PermanentError as exc:
            if "not found" not in str(exc):
                raise
            # No /models on this server (some proxies): the key and URL were still accepted.
            log.info("%s server has no /models endpoint; model not checked", self.provider_label)
            return self.model
        except PipelineError as exc:
            raise ProviderUnavailable(
                PROVIDER_UNREACHABLE,
                f"{self.provider_label} server at {self.resolve_base_url()} does not answer: {exc}",
            ) from None
        try:
            served = [str(m.get("id")) for m in response.json().get("data", []) if isinstance(m, dict)]
        except (ValueError, AttributeError):
            served = []
        if served and self.model not in served:
            raise ProviderUnavailable(
                MODEL_UNAVAILABLE,
                f"{self.provider_label} server at {self.resolve_base_url()} does not serve {self.model!r} "
                f"(it serves {', '.join(served[:10])}); set VIDEO_PIPELINE_OPENAI_MODEL to one of them.",
            )
        return self.model

    def _messages(self, prompt: str, system: str, images: Sequence[bytes]) -> list[dict[str, Any]]:
        user: str | list[dict[str, Any]] = prompt
        if images:
            user = [
                {
                    "type": "image_url",
                    "image_url": {
                        "url": f"data:{image_mime_type(image)};base64,{base64.b64encode(image).decode('ascii')}"
                    },
                }
                for image in images
            ]
            user.append({"type": "text", "text": prompt})
        return [{"role": "system", "content": system}, {"role": "user", "content": user}]

    def _request_body(
        self, prompt: str, system: str, schema: dict[str, Any], temperature: float, images: Sequence[bytes]
    ) -> dict[str, Any]:
        if self.structured_mode == "json_schema":
            response_format: dict[str, Any] = {
                "type": "json_schema",
                "json_schema": {"name": "video_analysis", "strict": True, "schema": _schema_for_openai(schema)},
            }
        else:
            # JSON mode guarantees JSON, not our fields: the schema goes into the
            # instructions, and validation plus one repeat catch the rest.
            system = (
                f"{system}\n\nAnswer with one JSON object, and nothing else, that matches this JSON Schema:\n"
                f"{json.dumps(_schema_for_openai(schema), ensure_ascii=False)}"
            )
            response_format = {"type": "json_object"}
        return {
            "model": self.model,
            "messages": self._messages(prompt, system, images),
            "temperature": temperature,
            "response_format": response_format,
        }

    def _refuses_json_schema(self, error: _HttpError) -> bool:
        if self.structured_mode != "json_schema" or error.response.status_code not in (400, 422, 501):
            return False
        text = f"{error.message} {error.code} {error.error.get('param') or ''}".lower()
        return "response_format" in text or "json_schema" in text or "schema" in text

    def _generate_once(
        self,
        *,
        prompt: str,
        system_instruction: str,
        response_schema: dict[str, Any],
        temperature: float,
        images: Sequence[bytes],
    ) -> tuple[str, CallRecord]:
        client = self.get_conn()
        while True:
            body = self._request_body(prompt, system_instruction, response_schema, temperature, images)
            started = time.monotonic()
            response = client.post("/chat/completions", json=body)
            latency = time.monotonic() - started
            if response.status_code < 400:
                break
            error = _HttpError(response)
            if self._refuses_json_schema(error):
                log.warning(
                    "%s server refused a json_schema response_format (%s); using json_object from now on",
                    self.provider_label,
                    redact(error.message[:200], self._api_key),
                )
                self.structured_mode = "json_object"
                continue
            raise error
        try:
            data = response.json()
            choice = data["choices"][0]
        except (ValueError, KeyError, IndexError, TypeError):
            raise Retryable(f"unreadable answer from the server (HTTP {response.status_code})") from None
        if choice.get("finish_reason") == "content_filter":
            raise InputRejected(
                RejectReason.CONTENT_BLOCKED,
                f"{self.provider_label} model stopped its answer for content reasons (content_filter)",
                details={"finish_reason": "content_filter", "model": self.model},
            )
        message = choice.get("message") or {}
        usage = data.get("usage") or {}
        record = self._record(
            model=str(data.get("model") or self.model),
            input_tokens=int(usage.get("prompt_tokens") or 0),
            output_tokens=int(usage.get("completion_tokens") or 0),
            latency=latency,
        )
        return str(message.get("content") or ""), record

    def _classify(self, exc: Exception) -> Retryable:
        import httpx

        if isinstance(exc, (InputRejected, PermanentError, QuotaExhausted)):
            raise exc
        if isinstance(exc, Retryable):
            return exc
        if isinstance(exc, httpx.TransportError):  # refused while Ollama/vLLM restarts, timeouts
            return Retryable(redact(f"{type(exc).__name__}: {exc}", self._api_key))
        if not isinstance(exc, _HttpError):
            raise exc
        status = exc.response.status_code
        message = redact(exc.message[:300], self._api_key)
        description = f"HTTP {status} {exc.code}: {message}".strip()
        retry_after = parse_retry_after(exc.response.headers.get("retry-after"))
        if retry_after is None and exc.response.headers.get("retry-after-ms"):
            retry_after = (parse_retry_after(exc.response.headers["retry-after-ms"]) or 0.0) / 1000
        if status == 402 or exc.code == "insufficient_quota":
            # Out of credit or over a hard quota: nothing succeeds until someone
            # pays or the period resets, so the video waits for a later run.
            raise QuotaExhausted(
                f"{self.provider_label} quota or credit exhausted for {self.model}: {message}"
            ) from None
        if status == 429:
            return Retryable(description, retry_after=retry_after, rate_limited=True)
        if status in (408, 409, 500, 502, 503, 504):
            return Retryable(description, retry_after=retry_after)
        if status in (401, 403):
            raise ProviderUnavailable(
                PROVIDER_AUTH,
                f"{self.provider_label} server refused the key from connection {self.openai_conn_id!r} or "
                f"{API_KEY_ENV_VAR} (HTTP {status}): {message}",
            ) from None
        if status == 404:
            raise PermanentError(
                f"{self.provider_label} model {self.model!r} or endpoint {exc.response.request.url.path} "
                f"not found: {message}"
            ) from None
        if exc.code in _POLICY_CODES or "content management policy" in message.lower():
            raise InputRejected(
                RejectReason.CONTENT_BLOCKED,
                f"{self.provider_label} server refused the transcript for content reasons ({exc.code or status})",
                details={"code": exc.code, "model": self.model},
            ) from None
        raise PermanentError(f"{self.provider_label} refused the request: {description}") from None
