"""The completion client against a real local server, and its parsing on MockTransport."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator

import httpx
import pytest
from pydantic import SecretStr
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, StreamingResponse
from starlette.routing import Route

from botkit.errors import (
    APIConnectionError,
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
from botkit.llm.client import ChatCompletion, CompletionClient, Timeouts, parse_completion
from botkit.llm.params import ChatParams
from tests.llm.openai_server import Answer, Fail, OpenAIServer, Streamed
from tests.loopback import LoopbackServer, free_port

MESSAGES = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi"}]


def client_for(server: OpenAIServer, **kwargs: object) -> CompletionClient:
    return CompletionClient(
        base_url=server.base_url,
        api_key=SecretStr("sk-test-secret"),
        **kwargs,  # type: ignore[arg-type]
    )


async def test_a_plain_completion(openai_server: OpenAIServer) -> None:
    params = ChatParams(
        temperature=0.2,
        top_p=0.9,
        max_tokens=50,
        stop=["\n\n"],
        seed=7,
        presence_penalty=0.1,
        frequency_penalty=0.2,
        n=1,
        user="u-1",
    )
    async with client_for(openai_server, headers={"x-team": "support"}) as client:
        result = await client.create(params.body("gpt-test", MESSAGES))
    assert result.text == "Hello from the test server."
    assert (result.id, result.object, result.model) == (
        "chatcmpl-test",
        "chat.completion",
        "gpt-test",
    )
    assert result.created == 1_700_000_000 and result.finish_reason == "stop"
    assert result.usage is not None and result.usage.total_tokens == 49
    sent = openai_server.received[0]
    assert sent.headers["authorization"] == "Bearer sk-test-secret"
    assert sent.headers["x-team"] == "support"
    assert sent.body == {
        "model": "gpt-test",
        "messages": MESSAGES,
        "temperature": 0.2,
        "top_p": 0.9,
        "max_tokens": 50,
        "stop": ["\n\n"],
        "seed": 7,
        "presence_penalty": 0.1,
        "frequency_penalty": 0.2,
        "n": 1,
        "user": "u-1",
    }


@pytest.mark.parametrize("key", ["sk-plain-string", SecretStr("sk-plain-string")])
async def test_the_key_may_be_a_plain_string(
    openai_server: OpenAIServer, key: str | SecretStr
) -> None:
    async with CompletionClient(base_url=openai_server.base_url, api_key=key) as client:
        await client.create(ChatParams().body("gpt-test", MESSAGES))
    assert openai_server.received[0].headers["authorization"] == "Bearer sk-plain-string"


async def test_a_streamed_completion(openai_server: OpenAIServer) -> None:
    openai_server.then(Streamed(["Hel", "lo", " world"]))
    async with client_for(openai_server) as client:
        items = [
            item async for item in client.stream(ChatParams().body("m", MESSAGES, stream=True))
        ]
    assert items[:3] == ["Hel", "lo", " world"]
    final = items[-1]
    assert isinstance(final, ChatCompletion)
    assert final.text == "Hello world" and final.finish_reason == "stop"
    assert final.usage is not None and final.usage.completion_tokens == 3
    body = openai_server.received[0].body
    assert body["stream"] is True and body["stream_options"] == {"include_usage": True}


async def test_a_stream_cut_off_midway_carries_the_text_so_far(openai_server: OpenAIServer) -> None:
    openai_server.then(Streamed(["one ", "two ", "three"], break_after=2))
    received = []
    async with client_for(openai_server) as client:
        with pytest.raises(StreamInterruptedError) as caught:
            async for item in client.stream(ChatParams().body("m", MESSAGES, stream=True)):
                received.append(item)
    assert received == ["one ", "two "]
    assert caught.value.partial == "one two "


@pytest.mark.parametrize(
    ("fail", "kind", "retryable"),
    [
        (
            Fail(400, {"message": "bad 'stop'", "type": "invalid_request_error", "code": None}),
            BadRequestError,
            False,
        ),
        (
            Fail(
                400,
                {
                    "message": "This model's maximum context length is 8192 tokens",
                    "code": "context_length_exceeded",
                },
            ),
            ContextLengthError,
            False,
        ),
        (
            Fail(401, {"message": "Incorrect API key provided", "code": "invalid_api_key"}),
            AuthenticationError,
            False,
        ),
        (
            Fail(404, {"message": "The model `gpt-9` does not exist", "code": "model_not_found"}),
            NotFoundError,
            False,
        ),
        (
            Fail(
                429,
                {"message": "Rate limit reached", "code": "rate_limit_exceeded"},
                {"retry-after": "3"},
            ),
            RateLimitError,
            True,
        ),
        (
            Fail(
                429,
                {
                    "message": "You exceeded your current quota",
                    "type": "insufficient_quota",
                    "code": "insufficient_quota",
                },
            ),
            QuotaExceededError,
            False,
        ),
        (Fail(500, {"message": "The server had an error"}), ServerError, True),
        (Fail(503, {"message": "Overloaded"}, {"x-should-retry": "false"}), ServerError, False),
        (Fail(409, {"message": "Conflict"}), BadRequestError.__base__, True),
    ],
)
async def test_errors_carry_the_apis_message_code_and_request_id(
    openai_server: OpenAIServer, fail: Fail, kind: type[Exception], retryable: bool
) -> None:
    fail.headers.setdefault("x-request-id", "req_123")
    openai_server.then(fail)
    async with client_for(openai_server) as client:
        with pytest.raises(kind) as caught:
            await client.create(ChatParams().body("m", MESSAGES))
    err = caught.value
    assert err.message == fail.error["message"]  # type: ignore[attr-defined,index]
    assert err.status == fail.status and err.request_id == "req_123"  # type: ignore[attr-defined]
    assert err.retryable is retryable  # type: ignore[attr-defined]
    if "retry-after" in fail.headers:
        assert err.retry_after == 3.0  # type: ignore[attr-defined]
    assert "sk-test-secret" not in str(err)


async def test_malformed_json_is_a_clear_error(openai_server: OpenAIServer) -> None:
    openai_server.then(Fail(200, body=b"{not json"))
    async with client_for(openai_server) as client:
        with pytest.raises(MalformedResponseError, match="not JSON"):
            await client.create(ChatParams().body("m", MESSAGES))


async def test_a_read_timeout(openai_server: OpenAIServer) -> None:
    openai_server.then(Answer(delay=2))
    timeouts = Timeouts(connect=1, read=0.2, total=5)
    async with client_for(openai_server, timeouts=timeouts) as client:
        started = time.monotonic()
        with pytest.raises(APITimeoutError):
            await client.create(ChatParams().body("m", MESSAGES))
    assert time.monotonic() - started < 1.5


async def test_a_total_timeout(openai_server: OpenAIServer) -> None:
    openai_server.then(Answer(delay=2))
    async with client_for(openai_server, timeouts=Timeouts(read=5, total=0.2)) as client:
        with pytest.raises(APITimeoutError, match="no answer within 0.2 s"):
            await client.create(ChatParams().body("m", MESSAGES))


async def test_connection_refused() -> None:
    port = free_port()  # nothing listens there
    async with CompletionClient(base_url=f"http://127.0.0.1:{port}/v1") as client:
        with pytest.raises(APIConnectionError) as caught:
            await client.create(ChatParams().body("m", MESSAGES))
    assert caught.value.retryable


async def test_models_are_listed(openai_server: OpenAIServer) -> None:
    async with client_for(openai_server) as client:
        assert await client.models() == ["model-b", "model-a"]


def test_responses_of_real_servers_are_tolerated() -> None:
    body = (
        b'{"choices": [{"message": {"role": "assistant", "content": null},'
        b' "finish_reason": "length", "extra": 1}], "surprise": true}'
    )
    result = parse_completion(body)
    assert result.text == "" and result.usage is None and result.truncated
    with pytest.raises(MalformedResponseError, match="no choices"):
        parse_completion(b'{"choices": []}')
    with pytest.raises(MalformedResponseError, match="not a JSON object"):
        parse_completion(b"[1, 2]")


HTTP_DATE_IN_30_S = "an HTTP date 30 s ahead"


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        (("retry-after-ms", "250"), (0.25, 0.25)),
        (("retry-after", "2.5"), (2.5, 2.5)),
        (("retry-after", HTTP_DATE_IN_30_S), (25, 30)),
        (("retry-after", "soon"), None),
    ],
)
async def test_retry_after_in_every_form(
    header: tuple[str, str], expected: tuple[float, float] | None
) -> None:
    name, value = header
    if value == HTTP_DATE_IN_30_S:  # made now, not when the tests were collected
        value = time.strftime("%a, %d %b %Y %H:%M:%S GMT", time.gmtime(time.time() + 30))

    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(429, json={"error": {"message": "slow down"}}, headers={name: value})

    async with CompletionClient(
        base_url="http://x/v1", transport=httpx.MockTransport(handler)
    ) as c:
        with pytest.raises(RateLimitError) as caught:
            await c.create({"model": "m", "messages": MESSAGES})
    if expected is None:
        assert caught.value.retry_after is None
    else:
        assert caught.value.retry_after is not None
        assert expected[0] <= caught.value.retry_after <= expected[1]


async def test_a_server_that_sends_an_error_event_mid_stream() -> None:
    events = (
        'data: {"choices": [{"index": 0, "delta": {"content": "Hi"}}]}\n\n'
        'data: {"error": {"message": "overloaded", "type": "server_error"}}\n\n'
    )

    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, text=events, headers={"content-type": "text/event-stream"})

    async with CompletionClient(
        base_url="http://x/v1", transport=httpx.MockTransport(handler)
    ) as c:
        with pytest.raises(ServerError, match="overloaded"):
            async for _ in c.stream({"model": "m", "messages": MESSAGES, "stream": True}):
                pass


async def test_requests_run_concurrently_on_one_client(openai_server: OpenAIServer) -> None:
    openai_server.then(*[Answer(delay=0.3) for _ in range(20)])
    async with client_for(openai_server) as client:
        started = time.monotonic()
        await asyncio.gather(*(client.create(ChatParams().body("m", MESSAGES)) for _ in range(20)))
    # Twenty 0.3 s answers one after another would take 6 s; the pool runs them at once.
    assert time.monotonic() - started < 3


async def test_waiting_for_a_pooled_connection_is_no_connect_timeout(
    openai_server: OpenAIServer,
) -> None:
    # One connection, three requests: two wait in the pool longer than the connect
    # timeout, yet nothing failed to connect. Only the total bounds that wait.
    openai_server.then(*[Answer(delay=0.3) for _ in range(3)])
    timeouts = Timeouts(connect=0.1, read=5, total=5)
    async with client_for(openai_server, timeouts=timeouts, max_connections=1) as client:
        results = await asyncio.gather(
            *(client.create(ChatParams().body("m", MESSAGES)) for _ in range(3))
        )
    assert [r.text for r in results] == ["Hello from the test server."] * 3


async def test_the_default_pool_asks_a_burst_at_once() -> None:
    # HTTP/1.1 carries one request in flight per connection: a burst larger than the pool
    # waits a whole answer's latency per pool-full (the pool was 256; 1,000 now, as the
    # OpenAI SDK's). The server holds every request until all of the burst has arrived.
    burst, in_flight, everyone = 300, 0, asyncio.Event()

    async def completions(request: Request) -> JSONResponse:
        nonlocal in_flight
        in_flight += 1
        if in_flight == burst:
            everyone.set()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(everyone.wait(), 3)
        in_flight -= 1
        message = {"role": "assistant", "content": "ok"}
        choice = {"index": 0, "message": message, "finish_reason": "stop"}
        return JSONResponse({"id": "c", "model": "m", "created": 0, "choices": [choice]})

    server = LoopbackServer(
        Starlette(routes=[Route("/v1/chat/completions", completions, methods=["POST"])])
    )
    await server.start()
    try:
        async with CompletionClient(base_url=f"http://127.0.0.1:{server.port}/v1") as client:
            answers = await asyncio.gather(
                *(client.create(ChatParams().body("m", MESSAGES)) for _ in range(burst))
            )
    finally:
        await server.stop()
    assert everyone.is_set() and [a.text for a in answers] == ["ok"] * burst


async def _raw_stream_server(pieces: list[bytes], pause: float = 0.0) -> LoopbackServer:
    """A server whose streamed answer is exactly `pieces`, each sent as its own write."""

    async def completions(request: Request) -> StreamingResponse:
        async def body() -> AsyncIterator[bytes]:
            for piece in pieces:
                yield piece
                await asyncio.sleep(pause)

        return StreamingResponse(body(), media_type="text/event-stream")

    server = LoopbackServer(
        Starlette(routes=[Route("/v1/chat/completions", completions, methods=["POST"])])
    )
    await server.start()
    return server


async def test_server_sent_events_as_servers_write_them() -> None:
    # CRLF line ends, a comment, other fields, "data:" without its space, and writes that
    # cut lines, and a character, in two.
    first = '{"choices": [{"index": 0, "delta": {"content": "Grüße, "}}]}'.encode()
    pieces = [
        b": keep-alive\r\n\r\nevent: message\r\nid: 1\r\ndata: " + first[:40],
        first[40:] + b'\r\n\r\ndata:{"choices": [{"index": 0, "delta": {"content": "wo',
        b'rld"}, "finish_reason": "stop"}]}\n\n',
        'data: {"choices": [{"index": 0, "delta": {"content": "!\u00e9"}}]}\n\n'.encode()[:-8],
        'data: {"choices": [{"index": 0, "delta": {"content": "!\u00e9"}}]}\n\n'.encode()[-8:],
        b"data: [DONE]\n\n",
    ]
    server = await _raw_stream_server(pieces)
    try:
        async with CompletionClient(base_url=f"http://127.0.0.1:{server.port}/v1") as client:
            items = [
                i async for i in client.stream({"model": "m", "messages": MESSAGES, "stream": True})
            ]
    finally:
        await server.stop()
    assert items[:-1] == ["Grüße, ", "world", "!é"]
    assert isinstance(items[-1], ChatCompletion) and items[-1].text == "Grüße, world!é"
    assert items[-1].finish_reason == "stop"


async def test_a_stream_that_stalls_past_the_read_timeout_is_cut_off() -> None:
    delta = b'data: {"choices": [{"index": 0, "delta": {"content": "Hi"}}]}\n\n'
    server = await _raw_stream_server([delta, delta], pause=1.0)
    try:
        timeouts = Timeouts(connect=1, read=0.2, total=0.3)  # a stream has no total
        async with CompletionClient(
            base_url=f"http://127.0.0.1:{server.port}/v1", timeouts=timeouts
        ) as client:
            received = []
            with pytest.raises(StreamInterruptedError) as caught:
                async for item in client.stream(
                    {"model": "m", "messages": MESSAGES, "stream": True}
                ):
                    received.append(item)
    finally:
        await server.stop()
    assert received == ["Hi"] and caught.value.partial == "Hi"


async def test_a_streamed_request_refused_with_a_status(openai_server: OpenAIServer) -> None:
    openai_server.then(
        Fail(429, {"message": "Slow down", "code": "rate_limit_exceeded"}, {"retry-after": "2"})
    )
    async with client_for(openai_server) as client:
        with pytest.raises(RateLimitError, match="Slow down") as caught:
            async for _ in client.stream(ChatParams().body("m", MESSAGES, stream=True)):
                pass
    assert caught.value.retry_after == 2.0
