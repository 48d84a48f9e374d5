"""A real HTTP server on 127.0.0.1 that speaks the chat-completions API, scripted per test.

Every request body it receives, and every completion it returns, is checked
against the official OpenAI OpenAPI spec when the spec is present; violations
are collected in `violations` and fail the test that caused them.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections import deque
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from tests.llm import openai_spec
from tests.loopback import LoopbackServer


@dataclass
class ToolCall:
    """The model calling a function; `arguments` is the JSON text it writes."""

    name: str
    arguments: str


@dataclass
class Answer:
    text: str | None = "Hello from the test server."
    finish_reason: str = "stop"
    usage: dict[str, int] | None = field(
        default_factory=lambda: {"prompt_tokens": 42, "completion_tokens": 7, "total_tokens": 49}
    )
    delay: float = 0.0
    tool_call: ToolCall | None = None


@dataclass
class Fail:
    status: int
    error: dict[str, Any] | None = None
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes | None = None  # raw body instead of the JSON error


@dataclass
class Streamed:
    deltas: list[str]
    finish_reason: str = "stop"
    break_after: int | None = None  # drop the connection after this many deltas
    usage: bool = True
    tool_call: ToolCall | None = None  # streamed after the deltas, its arguments in pieces
    hold: asyncio.Event | None = None  # sent the first delta, wait for it before the rest


@dataclass
class Received:
    body: dict[str, Any]
    headers: dict[str, str]
    at: float


Step = Answer | Fail | Streamed


class OpenAIServer:
    """Answers with the scripted steps in order, then with the default `Answer()`."""

    def __init__(self) -> None:
        self.script: deque[Step] = deque()
        self.received: list[Received] = []
        self.violations: list[str] = []
        self.port = 0

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def then(self, *steps: Step) -> OpenAIServer:
        self.script.extend(steps)
        return self

    async def start(self) -> None:
        app = Starlette(
            routes=[
                Route("/v1/chat/completions", self._completions, methods=["POST"]),
                Route("/v1/models", self._models),
            ]
        )
        self._http = LoopbackServer(app, timeout_graceful_shutdown=0)
        await self._http.start()
        self.port = self._http.port

    async def stop(self) -> None:
        await self._http.stop()

    async def _models(self, request: Request) -> Response:
        return JSONResponse(
            {
                "object": "list",
                "data": [
                    {"id": "model-b", "object": "model", "created": 0, "owned_by": "test"},
                    {"id": "model-a", "object": "model", "created": 0, "owned_by": "test"},
                ],
            }
        )

    async def _completions(self, request: Request) -> Response:
        body = json.loads(await request.body())
        self.received.append(Received(body, dict(request.headers), time.monotonic()))
        if openai_spec.available():
            self.violations += openai_spec.errors("CreateChatCompletionRequest", body)
        step = self.script.popleft() if self.script else Answer()
        if isinstance(step, Fail):
            if step.body is not None:
                return Response(step.body, step.status, step.headers, "application/json")
            error = step.error or {"message": f"HTTP {step.status}", "type": "server_error"}
            return JSONResponse({"error": error}, step.status, step.headers)
        if isinstance(step, Streamed):
            return StreamingResponse(self._stream(body, step), media_type="text/event-stream")
        if step.delay:
            await asyncio.sleep(step.delay)
        completion = {
            "id": "chatcmpl-test",
            "object": "chat.completion",
            "created": 1_700_000_000,
            "model": body["model"],
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": step.text, "refusal": None},
                    "finish_reason": "tool_calls" if step.tool_call else step.finish_reason,
                    "logprobs": None,
                }
            ],
            "system_fingerprint": "fp_test",  # an extra field clients must tolerate
        }
        if step.usage is not None:
            completion["usage"] = step.usage
        if step.tool_call is not None:
            completion["choices"][0]["message"]["tool_calls"] = [  # type: ignore[index]
                {
                    "id": "call_test",
                    "type": "function",
                    "function": {
                        "name": step.tool_call.name,
                        "arguments": step.tool_call.arguments,
                    },
                }
            ]
        if openai_spec.available():
            self.violations += openai_spec.errors("CreateChatCompletionResponse", completion)
        return JSONResponse(completion, headers={"x-request-id": "req_test"})

    async def _stream(self, body: dict[str, Any], step: Streamed) -> AsyncIterator[bytes]:
        base = {
            "id": "chatcmpl-test",
            "object": "chat.completion.chunk",
            "created": 1_700_000_000,
            "model": body["model"],
        }
        chunks = [
            {
                **base,
                "choices": [
                    {
                        "index": 0,
                        "delta": {"role": "assistant", "content": ""},
                        "finish_reason": None,
                    }
                ],
            }
        ]
        chunks += [
            {**base, "choices": [{"index": 0, "delta": {"content": delta}, "finish_reason": None}]}
            for delta in step.deltas
        ]
        finish_reason = step.finish_reason
        if (call := step.tool_call) is not None:
            finish_reason = "tool_calls"
            half = len(call.arguments) // 2
            pieces = [
                {"index": 0, "id": "call_test", "type": "function",
                 "function": {"name": call.name, "arguments": call.arguments[:half]}},
                {"index": 0, "function": {"arguments": call.arguments[half:]}},
            ]  # fmt: skip
            chunks += [
                {**base, "choices": [
                    {"index": 0, "delta": {"tool_calls": [piece]}, "finish_reason": None}
                ]}
                for piece in pieces
            ]  # fmt: skip
        chunks.append(
            {**base, "choices": [{"index": 0, "delta": {}, "finish_reason": finish_reason}]}
        )
        if step.usage:
            chunks.append(
                {
                    **base,
                    "choices": [],
                    "usage": {
                        "prompt_tokens": 30,
                        "completion_tokens": len(step.deltas),
                        "total_tokens": 30 + len(step.deltas),
                    },
                }
            )
        for i, chunk in enumerate(chunks):
            if step.break_after is not None and i > step.break_after:
                raise ConnectionAbortedError("the test server drops the stream")
            if openai_spec.available():
                self.violations += openai_spec.errors("CreateChatCompletionStreamResponse", chunk)
            yield f"data: {json.dumps(chunk)}\n\n".encode()
            await asyncio.sleep(0)
            if i == 1 and step.hold is not None:  # the first delta is out
                await step.hold.wait()
        yield b"data: [DONE]\n\n"
