"""The HTTP server under `botkit serve`, over raw sockets: slow and greedy clients, JSON for
every failure, one 405 per path, and 503 on kept-alive connections while it stops."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
from collections.abc import AsyncIterator
from typing import Any

import pytest

from botkit.home import BotDefinition
from tests.adapters.web_testing import KEY, ScriptedResponder, WebServer, web_server


@pytest.fixture
async def server(shop: BotDefinition) -> AsyncIterator[WebServer]:
    limits = {"header_timeout": 0.5, "max_connections": 8, "max_header_bytes": 4096}
    async with web_server([shop], settings={"server": limits}) as server:
        yield server


def port_of(server: WebServer) -> int:
    return int(server.url.rsplit(":", 1)[1])


@contextlib.asynccontextmanager
async def connection(
    server: WebServer,
) -> AsyncIterator[tuple[asyncio.StreamReader, asyncio.StreamWriter]]:
    reader, writer = await asyncio.open_connection("127.0.0.1", port_of(server))
    try:
        yield reader, writer
    finally:
        writer.close()
        with contextlib.suppress(OSError):
            await writer.wait_closed()


def request(method: str, path: str, *, body: bytes = b"", **headers: str) -> bytes:
    lines = [f"{method} {path} HTTP/1.1", "Host: botkit", f"Authorization: Bearer {KEY}"]
    lines += [f"{name.replace('_', '-')}: {value}" for name, value in headers.items()]
    if body:
        lines.append(f"Content-Length: {len(body)}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


async def response(reader: asyncio.StreamReader) -> tuple[int, dict[str, str], Any]:
    """One response off the connection: status, headers and the JSON body."""
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)
    status_line, *lines = head.decode().split("\r\n")
    headers = {}
    for line in lines:
        if line:
            name, _, value = line.partition(":")
            headers[name.lower()] = value.strip()
    body = await asyncio.wait_for(reader.readexactly(int(headers["content-length"])), 10)
    return int(status_line.split()[1]), headers, json.loads(body) if body else None


async def closed(reader: asyncio.StreamReader) -> bool:
    """True when the server closes the connection (within 10 s: never a hang)."""
    try:
        return await asyncio.wait_for(reader.read(), 10) == b""
    except ConnectionResetError:
        return True


# ---- slow clients ---------------------------------------------------------------------------


async def test_connections_that_do_not_finish_their_headers_are_closed(server: WebServer) -> None:
    async with connection(server) as (silent, _), connection(server) as (partial, writer):
        writer.write(b"GET /healthz HTTP/1.1\r\nHost: botkit\r\nX-Slow: ")
        assert await closed(partial)
        assert await closed(silent)


async def test_a_kept_alive_connection_is_timed_from_its_next_requests_first_byte(
    server: WebServer,
) -> None:
    async with connection(server) as (reader, writer):
        writer.write(request("GET", "/healthz"))
        assert (await response(reader))[0] == 200
        writer.write(b"GET /healthz HTTP/1.1\r\n")
        assert await closed(reader)


async def test_headers_sent_slowly_but_in_time_are_answered(server: WebServer) -> None:
    async with connection(server) as (reader, writer):
        writer.write(b"GET /healthz HTTP/1.1\r\n")
        await asyncio.sleep(0.1)
        writer.write(b"Host: botkit\r\n\r\n")
        status, _, body = await response(reader)
    assert (status, body) == (200, {"status": "ok"})


async def test_headers_over_the_limit_are_431_and_never_buffered_whole(server: WebServer) -> None:
    async with connection(server) as (reader, writer):
        writer.write(b"GET /healthz HTTP/1.1\r\nHost: botkit\r\nX-Big: " + b"a" * 5_000_000)
        status, headers, body = await response(reader)
        assert await closed(reader)
    assert status == 431 and headers["content-type"] == "application/json"
    assert body["error"]["code"] == "headers_too_large"
    async with connection(server) as (reader, writer):
        writer.write(request("GET", "/healthz", X_Fits="a" * 3000))
        assert (await response(reader))[0] == 200


async def test_a_large_body_is_not_counted_as_headers(server: WebServer) -> None:
    seeded = [{"role": "user", "content": "x" * 1000}] * 50  # a 50 KB body, sent in one write
    body = json.dumps({"messages": seeded}).encode()
    async with connection(server) as (reader, writer):
        writer.write(request("POST", "/v1/sessions", body=body, Content_Type="application/json"))
        status, _, created = await response(reader)
    assert status == 201, created


async def test_connections_over_the_cap_are_503_json(server: WebServer) -> None:
    async with contextlib.AsyncExitStack() as held:
        for _ in range(8):
            await held.enter_async_context(connection(server))
        async with connection(server) as (reader, writer):
            writer.write(request("GET", "/healthz"))
            status, headers, body = await response(reader)
            assert await closed(reader)
    assert status == 503 and headers["retry-after"] == "5"
    assert body["error"]["code"] == "unavailable"
    async with connection(server) as (reader, writer):  # the held ones are gone
        writer.write(request("GET", "/healthz"))
        assert (await response(reader))[0] == 200


# ---- every error is JSON --------------------------------------------------------------------


async def test_an_unanswered_exception_is_a_json_500_and_the_connection_is_kept(
    server: WebServer, caplog: pytest.LogCaptureFixture
) -> None:
    store = server.app.store
    real = store.get_record

    async def broken(key: str) -> dict[str, Any] | None:
        raise RuntimeError("a bug in the store")

    store.get_record = broken  # type: ignore[method-assign]
    async with connection(server) as (reader, writer):
        writer.write(request("GET", "/v1/sessions/abc"))
        status, headers, body = await response(reader)
        store.get_record = real  # type: ignore[method-assign]
        writer.write(request("GET", "/v1/sessions/abc"))  # the same connection, still usable
        again, _, _ = await response(reader)
    assert status == 500 and headers["content-type"] == "application/json"
    assert body["error"]["code"] == "internal" and "bug" not in body["error"]["message"]
    assert again == 404
    assert "a bug in the store" in caplog.text


async def test_bytes_that_are_not_http_are_a_json_400(server: WebServer) -> None:
    async with connection(server) as (reader, writer):
        writer.write(b"\x16\x03\x01 this is TLS, or noise\r\n\r\n")
        status, headers, body = await response(reader)
        assert await closed(reader)
    assert status == 400 and headers["content-type"] == "application/json"
    assert body["error"]["code"] == "invalid_http"


async def test_a_wrong_method_names_every_method_of_the_path(server: WebServer) -> None:
    async with connection(server) as (reader, writer):
        writer.write(request("PUT", "/v1/sessions/abc"))
        status, headers, body = await response(reader)
    assert status == 405 and body["error"]["code"] == "method_not_allowed"
    assert set(headers["allow"].split(", ")) == {"GET", "HEAD", "DELETE"}


# ---- stopping -------------------------------------------------------------------------------


async def test_a_request_on_a_kept_alive_connection_while_stopping_gets_a_json_503(
    server: WebServer,
) -> None:
    gate = asyncio.Event()
    responder = ScriptedResponder(["a slow ", "answer"], gate=gate)
    server.app.pipelines["shop"].responder = responder
    async with server.client() as client, connection(server) as (reader, writer):
        writer.write(request("GET", "/healthz"))
        assert (await response(reader))[0] == 200
        session_id = (await client.post("/v1/sessions", json={})).json()["session_id"]
        url = f"/v1/sessions/{session_id}/messages"
        slow = asyncio.create_task(client.post(url, json={"message": "hi"}))
        await asyncio.wait_for(responder.started.wait(), 5)
        os.kill(os.getpid(), signal.SIGTERM)
        try:
            await until_refused(port_of(server))  # the stop has begun: no new connections
            writer.write(request("GET", "/healthz"))
            status, headers, body = await response(reader)
            assert await closed(reader)
        finally:  # stopped, whatever happened: the fixture must not signal again
            gate.set()
            answered = await slow
            await asyncio.wait_for(server.task, 20)
    assert status == 503 and headers["retry-after"] == "5"
    assert headers["connection"] == "close" and body["error"]["code"] == "unavailable"
    assert answered.status_code == 200 and answered.json()["reply"] == "a slow answer"


async def until_refused(port: int) -> None:
    async with asyncio.timeout(10):
        while True:
            try:
                _, writer = await asyncio.open_connection("127.0.0.1", port)
            except OSError:
                return
            writer.close()
            await asyncio.sleep(0.02)
