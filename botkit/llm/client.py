"""One HTTP client per OpenAI-compatible API, shared by every bot of a process.

By default it runs on one pooled aiohttp session, which carries ten times the requests
of `httpx.AsyncClient` on one core (see bench/): a completion is one aiohttp request
under aiohttp's own timeouts (connect, read and, unless streamed, total in one
`ClientTimeout`, no second timer around it). Given any `httpx.AsyncBaseTransport`
instead (in tests, `httpx.MockTransport`), every call goes through that, streams through
httpx-sse; the model list always does (httpx-aiohttp's transport on the same session).
Each call is one attempt: retries, deadlines and fallbacks belong to the caller.
"""

from __future__ import annotations

import asyncio
import contextlib
import email.utils
import functools
import ssl
import time
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import httpx
import orjson
from httpx_sse import EventSource
from pydantic import SecretStr

from botkit.errors import (
    APIConnectionError,
    APIStatusError,
    APITimeoutError,
    AuthenticationError,
    BadRequestError,
    ContextLengthError,
    MalformedResponseError,
    NotFoundError,
    QuotaExceededError,
    RateLimitError,
    ServerError,
    StreamInterruptedError,
)
from botkit.llm.ratelimit import RateLimit
from botkit.messages import Usage

if TYPE_CHECKING:
    import aiohttp


@dataclass(frozen=True, slots=True)
class Timeouts:
    """Seconds to wait: to connect, for the next bytes (also between streamed chunks), and
    for a whole non-streamed answer. A stream has no total limit while text keeps coming."""

    connect: float = 5.0
    read: float = 60.0
    total: float = 120.0


@dataclass(frozen=True, slots=True)
class ToolCall:
    """A function the model asked to call, with its arguments as the JSON text it wrote."""

    name: str
    arguments: str


@dataclass(frozen=True, slots=True)
class ChatMessage:
    role: str
    content: str | None
    tool_calls: tuple[ToolCall, ...] = ()


@dataclass(frozen=True, slots=True)
class Choice:
    index: int
    message: ChatMessage
    finish_reason: str | None


@dataclass(frozen=True, slots=True, kw_only=True)
class ChatCompletion:
    """A chat completion as the API returned it; `usage` is None when the server sent none."""

    id: str
    object: str
    created: int
    model: str
    usage: Usage | None
    choices: list[Choice]

    @property
    def text(self) -> str:
        return self.choices[0].message.content or "" if self.choices else ""

    @property
    def finish_reason(self) -> str | None:
        return self.choices[0].finish_reason if self.choices else None

    @property
    def truncated(self) -> bool:
        """The model stopped at its token limit: the answer is cut off."""
        return self.finish_reason == "length"

    @property
    def tool_calls(self) -> tuple[ToolCall, ...]:
        return self.choices[0].message.tool_calls if self.choices else ()


class CompletionClient:
    """Calls `POST {base_url}/chat/completions`; open it with `async with` or close it."""

    def __init__(
        self,
        *,
        base_url: str,
        api_key: str | SecretStr | None = None,
        timeouts: Timeouts = Timeouts(),
        headers: Mapping[str, str] | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
        max_connections: int = 1000,
        rate_limit: RateLimit | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self._completions_url = httpx.URL(f"{self.base_url}/chat/completions")
        self._completions_url_text = f"{self.base_url}/chat/completions"
        self._models_url = httpx.URL(f"{self.base_url}/models")
        fixed = {
            "content-type": "application/json",
            "accept": "application/json",
            "user-agent": "botkit",
            **(headers or {}),
        }
        if isinstance(api_key, SecretStr):
            api_key = api_key.get_secret_value()
        if api_key:
            fixed["authorization"] = f"Bearer {api_key}"
        # Built once: normalizing headers for every request would cost more than sending it.
        self._headers = httpx.Headers(fixed)
        self._fixed_headers = fixed
        self._max_connections = max_connections
        self._session: aiohttp.ClientSession | None = None
        self._direct = transport is None  # plain completions on the aiohttp session itself
        if transport is None:
            import aiohttp
            from httpx_aiohttp import AiohttpTransport

            transport = AiohttpTransport(client=self._aiohttp)
            _verifying_context()  # ready before the first message, not paid by it
            # The pool's queue is no connection attempt: waiting there is bounded by the
            # total (and the caller's deadline), not by the connect timeout.
            self._create_timeout = aiohttp.ClientTimeout(
                total=timeouts.total, sock_connect=timeouts.connect, sock_read=timeouts.read
            )
        self._transport = transport
        self._timeouts = timeouts
        self._extensions = {
            "timeout": {
                "connect": timeouts.connect,
                "read": timeouts.read,
                "write": timeouts.read,
                "pool": timeouts.connect,
            }
        }
        self.rate_limit = rate_limit

    async def create(self, body: dict[str, Any], *, estimated_tokens: int = 0) -> ChatCompletion:
        """One non-streamed completion."""
        await self._take_budget(estimated_tokens)
        if self._direct:
            status, reason, headers, content = await self._post(body)
        else:
            status, reason, headers, content = await self._via_transport(body)
        request_id = headers.get("x-request-id")
        if status >= 400:
            raise status_error(status, reason, headers, content)
        completion = parse_completion(content, request_id)
        await self._settle_budget(estimated_tokens, completion.usage)
        return completion

    async def _post(self, body: dict[str, Any]) -> tuple[int, str, Mapping[str, str], bytes]:
        """The hot path: one aiohttp request, its only timer aiohttp's own."""
        import aiohttp

        try:
            async with self._aiohttp().post(
                self._completions_url_text,  # a str: aiohttp's URL is faster built from one
                data=orjson.dumps(body),
                timeout=self._create_timeout,
            ) as response:
                content = await response.read()
        except aiohttp.ServerTimeoutError as err:  # connecting or reading: before TimeoutError
            raise APITimeoutError(f"timed out: {err}") from err
        except TimeoutError as err:
            raise APITimeoutError(f"no answer within {self._timeouts.total:g} s") from err
        except aiohttp.ClientError as err:
            raise APIConnectionError(f"connection failed: {err!r}") from err
        return response.status, response.reason or "", response.headers, content

    async def _via_transport(
        self, body: dict[str, Any]
    ) -> tuple[int, str, Mapping[str, str], bytes]:
        try:
            async with asyncio.timeout(self._timeouts.total):
                response = await self._send(self._completions_url, body)
                try:
                    content = await response.aread()
                finally:
                    await response.aclose()
        except TimeoutError as err:
            raise APITimeoutError(f"no answer within {self._timeouts.total:g} s") from err
        except httpx.TransportError as err:
            raise connection_error(err) from err
        return response.status_code, response.reason_phrase, response.headers, content

    def _aiohttp(self) -> aiohttp.ClientSession:
        """The pooled session, made on first use (it belongs to the running event loop)."""
        if self._session is None:
            import aiohttp

            timeouts = self._timeouts
            self._session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(
                    limit=self._max_connections, ssl=_verifying_context()
                ),
                headers=self._fixed_headers,
                timeout=aiohttp.ClientTimeout(
                    sock_connect=timeouts.connect, sock_read=timeouts.read
                ),
                auto_decompress=True,
            )
        return self._session

    async def stream(
        self, body: dict[str, Any], *, estimated_tokens: int = 0
    ) -> AsyncIterator[str | ChatCompletion]:
        """Text deltas as they arrive, then the whole `ChatCompletion` (text, usage, reason)."""
        await self._take_budget(estimated_tokens)
        opened = self._events_direct(body) if self._direct else self._events_via_transport(body)
        parts: list[str] = []
        meta: dict[str, Any] = {}
        finish_reason: str | None = None
        usage: Usage | None = None
        calls: dict[int, list[str]] = {}  # index → [name, arguments so far]
        done = False
        async with opened as (request_id, events):
            try:
                async for data in events:
                    if data == "[DONE]":
                        done = True
                        break
                    chunk = _json_object(data.encode(), request_id)
                    if "error" in chunk:  # a server failing after it began to answer
                        raise _error_from_payload(500, chunk, request_id)
                    meta = meta or chunk
                    for choice in chunk.get("choices") or ():
                        if choice.get("index", 0) != 0:
                            continue
                        delta = choice.get("delta") or {}
                        if content := delta.get("content"):
                            parts.append(content)
                            yield content
                        for call in delta.get("tool_calls") or ():
                            _add_tool_call_delta(calls, call)
                        finish_reason = choice.get("finish_reason") or finish_reason
                    if chunk.get("usage"):
                        usage = _usage(chunk["usage"])
            except _StreamBroke as err:
                raise StreamInterruptedError(
                    f"the stream broke off: {err}", partial="".join(parts), request_id=request_id
                ) from err.__cause__
        if not done and finish_reason is None:
            raise StreamInterruptedError(
                "the stream ended before the answer did",
                partial="".join(parts),
                request_id=request_id,
            )
        await self._settle_budget(estimated_tokens, usage)
        text = "".join(parts)
        yield ChatCompletion(
            id=str(meta.get("id", "")),
            object="chat.completion",
            created=int(meta.get("created") or 0),
            model=str(meta.get("model", body.get("model", ""))),
            usage=usage,
            choices=[
                Choice(
                    0,
                    ChatMessage(
                        "assistant",
                        text,
                        tuple(ToolCall(name, arguments) for name, arguments in calls.values()),
                    ),
                    finish_reason,
                )
            ],
        )

    @contextlib.asynccontextmanager
    async def _events_direct(
        self, body: dict[str, Any]
    ) -> AsyncIterator[tuple[str | None, AsyncIterator[str]]]:
        """The data of each server-sent event, read straight off the aiohttp session
        (connect and read timeouts: the session's; a stream has no total)."""
        import aiohttp

        try:
            response = await self._aiohttp().post(
                self._completions_url_text, data=orjson.dumps(body)
            )
        except aiohttp.ServerTimeoutError as err:
            raise APITimeoutError(f"timed out: {err}") from err
        except aiohttp.ClientError as err:
            raise APIConnectionError(f"connection failed: {err!r}") from err
        try:
            request_id = response.headers.get("x-request-id")
            if response.status >= 400:
                try:
                    content = await response.read()
                except aiohttp.ClientError as err:
                    raise APIConnectionError(f"connection failed: {err!r}") from err
                raise status_error(
                    response.status, response.reason or "", response.headers, content
                )
            yield request_id, _sse_data(response)
        finally:
            response.release()

    @contextlib.asynccontextmanager
    async def _events_via_transport(
        self, body: dict[str, Any]
    ) -> AsyncIterator[tuple[str | None, AsyncIterator[str]]]:
        try:
            response = await self._send(self._completions_url, body)
        except httpx.TransportError as err:
            raise connection_error(err) from err
        try:
            request_id = _request_id(response)
            if response.status_code >= 400:
                content = await response.aread()
                reason = response.reason_phrase
                raise status_error(response.status_code, reason, response.headers, content)

            async def data() -> AsyncIterator[str]:
                try:
                    async for event in EventSource(response).aiter_sse():
                        yield event.data
                except httpx.TransportError as err:
                    raise _StreamBroke(str(err)) from err

            yield request_id, data()
        finally:
            await response.aclose()

    async def models(self) -> list[str]:
        """The model ids `GET {base_url}/models` lists."""
        try:
            response = await self._send(self._models_url, None)
            content = await response.aread()
            await response.aclose()
        except httpx.TransportError as err:
            raise connection_error(err) from err
        if response.status_code >= 400:
            reason = response.reason_phrase
            raise status_error(response.status_code, reason, response.headers, content)
        data = _json_object(content, _request_id(response)).get("data")
        if not isinstance(data, list):
            raise MalformedResponseError("the model list has no 'data' array")
        return [str(item["id"]) for item in data if isinstance(item, dict) and "id" in item]

    async def aclose(self) -> None:
        await self._transport.aclose()  # closes the session too, once it has used it
        if self._session is not None and not self._session.closed:
            await self._session.close()

    async def __aenter__(self) -> CompletionClient:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    async def _send(self, url: httpx.URL, body: dict[str, Any] | None) -> httpx.Response:
        # A ready stream skips httpx's content encoding; the transport sets the length.
        content = b"" if body is None else orjson.dumps(body)
        request = httpx.Request(
            "GET" if body is None else "POST",
            url,
            headers=self._headers,
            stream=httpx.ByteStream(content),
            extensions=self._extensions,
        )
        request.read()
        return await self._transport.handle_async_request(request)

    async def _take_budget(self, estimated_tokens: int) -> None:
        if self.rate_limit is not None:
            await self.rate_limit.take(estimated_tokens)

    async def _settle_budget(self, estimated_tokens: int, usage: Usage | None) -> None:
        if self.rate_limit is not None and usage is not None:
            await self.rate_limit.settle(estimated_tokens, usage.total_tokens)


class _StreamBroke(Exception):
    """The connection failed while a stream was being read."""


async def _sse_data(response: aiohttp.ClientResponse) -> AsyncIterator[str]:
    """The data of each server-sent event of an aiohttp response: `data:` lines joined, an
    empty line ending the event; other fields and comments carry nothing botkit uses.
    (Lines end in LF or CRLF, as OpenAI-compatible servers send them.)

    Written here because httpx-sse reads httpx responses only: going through httpx to
    reuse it cost about a third of the client's CPU per streamed answer (bench/).
    """
    import aiohttp

    data: list[str] = []
    pending = b""
    try:
        async for chunk in response.content.iter_any():
            lines = (pending + chunk).split(b"\n")
            pending = lines.pop()
            for raw in lines:
                line = raw.decode().removesuffix("\r")
                if not line:
                    if data:
                        yield "\n".join(data)
                        data = []
                elif line.startswith("data:"):
                    data.append(line[6:] if line.startswith("data: ") else line[5:])
    except (aiohttp.ClientError, TimeoutError) as err:
        raise _StreamBroke(str(err) or type(err).__name__) from err


@functools.cache
def _verifying_context() -> ssl.SSLContext:
    """httpx's TLS settings (certifi's roots, `SSL_CERT_FILE`), made once a process: loading
    the roots takes ~35 ms, which the first burst of messages would otherwise wait for."""
    return httpx.create_ssl_context()


def parse_completion(content: bytes, request_id: str | None = None) -> ChatCompletion:
    """A chat completion from a response body, tolerant of what real servers leave out."""
    data = _json_object(content, request_id)
    raw_choices = data.get("choices")
    if not isinstance(raw_choices, list) or not raw_choices:
        raise MalformedResponseError("the answer has no choices", request_id=request_id)
    choices = []
    for i, raw in enumerate(raw_choices):
        message = raw.get("message") if isinstance(raw, dict) else None
        if not isinstance(message, dict):
            raise MalformedResponseError("a choice has no message", request_id=request_id)
        content_ = message.get("content")
        choices.append(
            Choice(
                int(raw.get("index", i)),
                ChatMessage(
                    str(message.get("role", "assistant")),
                    None if content_ is None else str(content_),
                    _tool_calls(message.get("tool_calls")),
                ),
                raw.get("finish_reason"),
            )
        )
    usage = data.get("usage")
    return ChatCompletion(
        id=str(data.get("id", "")),
        object=str(data.get("object", "chat.completion")),
        created=int(data.get("created") or 0),
        model=str(data.get("model", "")),
        usage=_usage(usage) if isinstance(usage, dict) else None,
        choices=choices,
    )


def status_error(
    status: int, reason: str, headers: Mapping[str, str], content: bytes
) -> APIStatusError:
    """The exception for an error status, with the API's own message and code."""
    try:
        payload = orjson.loads(content)
    except orjson.JSONDecodeError:
        payload = None
    if not isinstance(payload, dict) or not isinstance(payload.get("error"), dict | str):
        text = content.decode(errors="replace").strip()[:300]
        payload = {"error": {"message": text or reason or "no details"}}
    return _error_from_payload(status, payload, headers.get("x-request-id"), headers)


def _error_from_payload(
    status: int,
    payload: dict[str, Any],
    request_id: str | None,
    headers: Mapping[str, str] | None = None,
) -> APIStatusError:
    error = payload["error"]
    if isinstance(error, str):
        error = {"message": error}
    message = str(error.get("message") or f"HTTP {status}")
    code = error.get("code") or error.get("type")
    code = str(code) if code is not None else None
    kind: type[APIStatusError]
    if status == 400 and (code == "context_length_exceeded" or "context length" in message.lower()):
        kind = ContextLengthError
    elif status == 400:
        kind = BadRequestError
    elif status in (401, 403):
        kind = AuthenticationError
    elif status == 404:
        kind = NotFoundError
    elif status == 429 and "insufficient_quota" in (code, error.get("type")):
        kind = QuotaExceededError
    elif status == 429:
        kind = RateLimitError
    elif status >= 500:
        kind = ServerError
    else:
        kind = APIStatusError
    should_retry = None
    if headers is not None and (verdict := headers.get("x-should-retry")) in ("true", "false"):
        should_retry = verdict == "true"
    return kind(
        message,
        status=status,
        code=code,
        request_id=request_id,
        retry_after=retry_after(headers) if headers is not None else None,
        should_retry=should_retry,
    )


def connection_error(err: httpx.TransportError) -> APIConnectionError:
    """A transport failure as botkit's error: a timeout, or a failed connection."""
    # httpx-aiohttp reports every aiohttp connection error as a ConnectTimeout, so the
    # underlying cause decides: only a real timeout is an APITimeoutError.
    cause = err.__cause__
    if isinstance(err, httpx.TimeoutException) and (
        cause is None or isinstance(cause, TimeoutError)
    ):
        return APITimeoutError(f"timed out: {err}")
    return APIConnectionError(f"connection failed: {err}")


def retry_after(headers: Mapping[str, str]) -> float | None:
    """Seconds the server asks us to wait: `retry-after-ms`, else `Retry-After` (seconds or
    an HTTP date)."""
    if (millis := headers.get("retry-after-ms")) is not None:
        try:
            return max(0.0, float(millis) / 1000)
        except ValueError:
            pass
    value = headers.get("retry-after")
    if value is None:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


def _tool_calls(raw: object) -> tuple[ToolCall, ...]:
    """The function calls of a message, skipping any entry that is not one."""
    calls = []
    for call in raw if isinstance(raw, list) else ():
        function = call.get("function") if isinstance(call, dict) else None
        if isinstance(function, dict) and isinstance(function.get("name"), str):
            calls.append(ToolCall(function["name"], str(function.get("arguments") or "")))
    return tuple(calls)


def _add_tool_call_delta(calls: dict[int, list[str]], raw: object) -> None:
    """A streamed tool call arrives in pieces: the name first, the arguments in parts."""
    if not isinstance(raw, dict):
        return
    entry = calls.setdefault(int(raw.get("index") or 0), ["", ""])
    function = raw.get("function") or {}
    if isinstance(function, dict):
        entry[0] += str(function.get("name") or "")
        entry[1] += str(function.get("arguments") or "")


def _usage(raw: Mapping[str, Any]) -> Usage:
    return Usage(int(raw.get("prompt_tokens") or 0), int(raw.get("completion_tokens") or 0))


def _json_object(content: bytes, request_id: str | None) -> dict[str, Any]:
    try:
        data = orjson.loads(content)
    except orjson.JSONDecodeError as err:
        raise MalformedResponseError(
            f"the answer is not JSON: {content[:80]!r}", request_id=request_id
        ) from err
    if not isinstance(data, dict):
        raise MalformedResponseError("the answer is not a JSON object", request_id=request_id)
    return data


def _request_id(response: httpx.Response) -> str | None:
    request_id: str | None = response.headers.get("x-request-id")
    return request_id
