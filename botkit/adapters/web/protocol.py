"""The HTTP edge of the web channel: request bodies in, JSON errors and SSE events out.

Every failure a client can cause becomes an `ApiError`, answered as
`{"error": {"code", "message"}}` with a 4xx status: bad input is never a 500. A
store that cannot be reached is a 503 with `Retry-After`, so clients try again.
The OpenAI-compatible routes answer the same errors in OpenAI's shape, which
holds botkit's: `{"error": {"code", "message", "type", "param"}}`.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, TypeVar

import orjson
from pydantic import BaseModel, ValidationError
from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse, Response

from botkit.errors import StoreError

logger = logging.getLogger(__name__)
RETRY_AFTER = "5"
"""Seconds a client is asked to wait before retrying after a 503."""

M = TypeVar("M", bound=BaseModel)
Endpoint = Callable[[Request], Awaitable[Response]]


class ApiError(Exception):
    """A request the server will not carry out, with the status and code to answer."""

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        *,
        headers: Mapping[str, str] | None = None,
        param: str | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.headers = dict(headers or {})
        self.param = param
        """The request field at fault, when one is (OpenAI's `param`)."""

    def response(self, *, openai: bool = False) -> JSONResponse:
        if openai:
            return JSONResponse(
                {"error": self.openai_error()}, status_code=self.status, headers=self.headers
            )
        return error_response(self.status, self.code, self.message, headers=self.headers)

    def openai_error(self) -> dict[str, Any]:
        return {
            "message": self.message,
            "type": OPENAI_TYPES.get(self.status, "invalid_request_error"),
            "param": self.param,
            "code": self.code,
        }


OPENAI_TYPES = {
    401: "authentication_error",
    403: "permission_error",
    404: "invalid_request_error",
    429: "rate_limit_error",
    500: "server_error",
    503: "server_error",
}
"""OpenAI's error `type` for a status (any other 4xx: invalid_request_error)."""


def error_response(
    status: int, code: str, message: str, *, headers: Mapping[str, str] | None = None
) -> JSONResponse:
    return JSONResponse(
        {"error": {"code": code, "message": message}}, status_code=status, headers=headers
    )


def not_found(what: str = "session") -> ApiError:
    return ApiError(404, "not_found", f"no such {what}")


def unavailable(message: str) -> ApiError:
    return ApiError(503, "unavailable", message, headers={"Retry-After": RETRY_AFTER})


def endpoint(handler: Endpoint, *, openai: bool = False) -> Endpoint:
    """The handler, with its `ApiError`s answered as JSON (in OpenAI's shape with `openai`)."""

    async def run(request: Request) -> Response:
        try:
            return await handler(request)
        except ApiError as err:
            return err.response(openai=openai)
        except StoreError as err:
            logger.warning("%s %s: the store failed: %s", request.method, request.url.path, err)
            failed = unavailable("the store cannot be reached; try again shortly")
            return failed.response(openai=openai)
        except ClientDisconnect:
            return Response(status_code=400)

    run.__name__ = handler.__name__
    run.__doc__ = handler.__doc__
    return run


async def read_json(request: Request, model: type[M], *, max_bytes: int) -> M:
    """The body as `model`; an empty body counts as `{}` so defaults can apply."""
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > max_bytes:
        raise _too_large(max_bytes)
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > max_bytes:
            raise _too_large(max_bytes)
    data: Any = {}
    if body.strip():
        try:
            data = orjson.loads(body)
        except orjson.JSONDecodeError as err:
            raise ApiError(422, "invalid_json", f"the body is not valid JSON: {err}") from err
    if not isinstance(data, dict):
        raise ApiError(422, "invalid_request", "the body must be a JSON object")
    try:
        return model.model_validate(data, strict=True)
    except ValidationError as err:
        first = _where(err.errors()[0]["loc"]) or None
        raise ApiError(422, "invalid_request", _describe(err), param=first) from err


def _describe(err: ValidationError) -> str:
    problems = []
    for error in err.errors(include_url=False):
        where = _where(error["loc"]) or "body"
        problem = f"{where}: {error['msg'].removeprefix('Value error, ')}"
        if problem not in problems:
            problems.append(problem)
    return "; ".join(problems)


_FIELD = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_TYPES = frozenset({"str", "int", "float", "bool", "list", "dict", "none"})


def _where(loc: tuple[int | str, ...]) -> str:
    """The field's path as the client wrote it: pydantic's names of union members
    (`str`, `function-after[…]`) left out."""
    parts = [
        str(part)
        for part in loc
        if isinstance(part, int) or (_FIELD.fullmatch(part) and part not in _TYPES)
    ]
    return ".".join(parts)


def _too_large(max_bytes: int) -> ApiError:
    return ApiError(413, "too_large", f"the body is larger than {max_bytes} bytes")


def sse_event(event: str, data: object, *, id: str | None = None) -> bytes:
    """One Server-Sent Event; JSON never contains a raw newline, so one data line suffices."""
    head = b"id: " + id.encode() + b"\n" if id is not None else b""
    return head + b"event: " + event.encode() + b"\ndata: " + orjson.dumps(data) + b"\n\n"


def wants_stream(request: Request, asked: bool) -> bool:
    return asked or "text/event-stream" in request.headers.get("accept", "")


def message_text(text: str, *, max_chars: int, field: str = "message") -> str:
    """The user's message, refused when empty or longer than `max_chars`."""
    if not text.strip():
        raise ApiError(422, "invalid_request", f"{field}: must not be empty", param=field)
    if len(text) > max_chars:
        raise ApiError(
            413, "message_too_large", f"{field}: longer than {max_chars} characters", param=field
        )
    return text


def body_limit(max_chars: int) -> int:
    """Bytes a body may have: the longest message in UTF-8, plus room for the other fields."""
    return max_chars * 4 + 64 * 1024
