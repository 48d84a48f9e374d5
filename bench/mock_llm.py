"""A local OpenAI-compatible server for benchmarks: fixed answers after a fixed latency.

    python -m bench.mock_llm --port 9100 --latency-ms 50

Answers `POST /v1/chat/completions` (plain JSON, or Server-Sent Events when the
body asks for `"stream": true`) and `GET /v1/models`. It is built on aiohttp's
server with pre-encoded bodies so the client under test, not the server, is the
bottleneck.
"""

from __future__ import annotations

import argparse
import asyncio
import json

from aiohttp import web

ANSWER = "Our team works Monday to Friday, 9:00 to 17:00. This assistant answers around the clock."
DELTAS = [ANSWER[i : i + 9] for i in range(0, len(ANSWER), 9)]


def completion_body(model: str = "mock-model") -> bytes:
    return json.dumps(
        {
            "id": "chatcmpl-mock",
            "object": "chat.completion",
            "created": 1700000000,
            "model": model,
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": ANSWER, "refusal": None},
                    "finish_reason": "stop",
                    "logprobs": None,
                }
            ],
            "usage": {"prompt_tokens": 120, "completion_tokens": 20, "total_tokens": 140},
        }
    ).encode()


def stream_body(model: str = "mock-model") -> bytes:
    def chunk(delta: dict[str, object], finish: str | None, usage: object = None) -> str:
        payload = {
            "id": "chatcmpl-mock",
            "object": "chat.completion.chunk",
            "created": 1700000000,
            "model": model,
            "choices": [] if usage else [{"index": 0, "delta": delta, "finish_reason": finish}],
        }
        if usage:
            payload["usage"] = usage
        return f"data: {json.dumps(payload)}\n\n"

    events = [chunk({"role": "assistant", "content": ""}, None)]
    events += [chunk({"content": d}, None) for d in DELTAS]
    events.append(chunk({}, "stop"))
    events.append(
        chunk({}, None, {"prompt_tokens": 120, "completion_tokens": 20, "total_tokens": 140})
    )
    events.append("data: [DONE]\n\n")
    return "".join(events).encode()


MODELS = json.dumps(
    {
        "object": "list",
        "data": [{"id": "mock-model", "object": "model", "created": 0, "owned_by": "bench"}],
    }
).encode()


def make_app(latency_ms: float) -> web.Application:
    plain, streamed = completion_body(), stream_body()
    delay = latency_ms / 1000

    async def completions(request: web.Request) -> web.Response:
        body = await request.read()
        if delay:
            await asyncio.sleep(delay)
        if b'"stream":true' in body.replace(b" ", b""):
            return web.Response(body=streamed, content_type="text/event-stream")
        return web.Response(body=plain, content_type="application/json")

    async def models(request: web.Request) -> web.Response:
        return web.Response(body=MODELS, content_type="application/json")

    app = web.Application(client_max_size=64 * 1024 * 1024)
    app.router.add_post("/v1/chat/completions", completions)
    app.router.add_get("/v1/models", models)
    return app


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=9100)
    parser.add_argument("--latency-ms", type=float, default=0)
    args = parser.parse_args()
    web.run_app(
        make_app(args.latency_ms),
        host=args.host,
        port=args.port,
        print=None,
        access_log=None,
        backlog=4096,
    )


if __name__ == "__main__":
    main()
