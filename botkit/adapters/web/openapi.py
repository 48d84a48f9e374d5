"""The OpenAPI 3.1 document of the web channel; bodies come from the pydantic models in use."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel
from pydantic.json_schema import models_json_schema

from botkit.adapters.web import schemas as s

REQUESTS: list[type[BaseModel]] = [s.NewSession, s.NewPublicSession, s.NewMessage]
RESPONSES: list[type[BaseModel]] = [
    s.SessionCreated,
    s.SessionState,
    s.MessageReply,
    s.StreamDelta,
    s.ModelList,
    s.Health,
    s.ErrorBody,
    s.PageSession,
    s.PageReply,
]

ERRORS = {
    "401": ("Unauthorized", "No API key, or not a valid one."),
    "403": ("Forbidden", "The public chat is turned off on this server."),
    "404": ("NotFound", "No such session (or not one of this key's)."),
    "413": ("TooLarge", "The body or the message is too large."),
    "422": ("Invalid", "The body is not JSON, not an object, or a field is missing or wrong."),
    "429": ("RateLimited", "Too many messages from this client; retry after `Retry-After` s."),
    "503": ("Unavailable", "The server is shutting down."),
}

SSE = (
    "Server-Sent Events: `delta` events (data: StreamDelta) as the reply is generated, "
    "then one `done` event whose data is the whole reply (the JSON response's shape), "
    "or an `error` event (data: ErrorBody)."
)


def openapi_document(version: str) -> dict[str, Any]:
    _, definitions = models_json_schema(
        [(model, "validation") for model in REQUESTS]
        + [(model, "serialization") for model in RESPONSES],
        ref_template="#/components/schemas/{model}",
    )
    keyed: list[dict[str, list[str]]] = [{"apiKey": []}]
    session = [_path_parameter()]
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "botkit web channel",
            "version": version,
            "description": (
                "Chat sessions with botkit's support bots. Routes under /v1/ need "
                "`Authorization: Bearer KEY` (BOTKIT_WEB_API_KEYS); a session is visible "
                "only to the key that created it. Routes under /chat/ serve the public "
                "chat page: no key, a message limit per client address."
            ),
        },
        "paths": {
            "/v1/sessions": {
                "post": _op(
                    "Start a session",
                    body="NewSession",
                    ok=("201", "SessionCreated"),
                    errors="401 413 422",
                    security=keyed,
                )
            },
            "/v1/sessions/{session_id}": {
                "parameters": session,
                "get": _op(
                    "The session's messages and metadata",
                    ok=("200", "SessionState"),
                    errors="401 404",
                    security=keyed,
                ),
                "delete": _op(
                    "Forget the session", ok=("204", None), errors="401 404", security=keyed
                ),
            },
            "/v1/sessions/{session_id}/messages": {
                "parameters": session,
                "post": _op(
                    "Send a message and get the reply",
                    body="NewMessage",
                    ok=("200", "MessageReply"),
                    stream=True,
                    errors="401 404 413 422 503",
                    security=keyed,
                ),
            },
            "/v1/models": {
                "get": _op(
                    "The bots served and the model each uses",
                    ok=("200", "ModelList"),
                    errors="401",
                    security=keyed,
                )
            },
            "/healthz": {"get": _op("Liveness", ok=("200", "Health"))},
            "/readyz": {
                "get": {
                    "summary": "Readiness: the store answers and every channel has started",
                    "responses": {
                        "200": {"description": "Ready"},
                        "503": {"description": "Not ready; the body lists why"},
                    },
                }
            },
            "/metrics": {
                "get": {
                    "summary": "Prometheus metrics",
                    "responses": {
                        "200": {
                            "description": "Prometheus text exposition format",
                            "content": {"text/plain": {"schema": {"type": "string"}}},
                        }
                    },
                }
            },
            "/openapi.json": {
                "get": {
                    "summary": "This document",
                    "responses": {
                        "200": {
                            "description": "OpenAPI 3.1",
                            "content": {"application/json": {"schema": {"type": "object"}}},
                        }
                    },
                }
            },
            "/chat/sessions": {
                "post": _op(
                    "Start a chat-page session",
                    body="NewPublicSession",
                    ok=("201", "PageSession"),
                    errors="403 413 422 429",
                )
            },
            "/chat/sessions/{session_id}": {
                "parameters": session,
                "get": _op(
                    "A chat-page session, ready to show",
                    ok=("200", "PageSession"),
                    errors="403 404",
                ),
                "delete": _op("Forget a chat-page session", ok=("204", None), errors="403 404"),
            },
            "/chat/sessions/{session_id}/messages": {
                "parameters": session,
                "post": _op(
                    "Send a chat-page message and get the reply",
                    body="NewMessage",
                    ok=("200", "PageReply"),
                    stream=True,
                    errors="403 404 413 422 429 503",
                ),
            },
        },
        "components": {
            "schemas": definitions["$defs"],
            "securitySchemes": {"apiKey": {"type": "http", "scheme": "bearer"}},
            "responses": {name: _error(text, status) for status, (name, text) in ERRORS.items()},
        },
    }


def _op(
    summary: str,
    *,
    ok: tuple[str, str | None],
    body: str | None = None,
    errors: str = "",
    stream: bool = False,
    security: list[dict[str, list[str]]] | None = None,
) -> dict[str, Any]:
    status, schema = ok
    success: dict[str, Any] = {"description": summary}
    if schema is not None:
        success["content"] = {"application/json": {"schema": _ref(schema)}}
    if stream:
        success["content"]["text/event-stream"] = {"schema": {"type": "string", "description": SSE}}
    responses = {status: success}
    for code in errors.split():
        responses[code] = {"$ref": f"#/components/responses/{ERRORS[code][0]}"}
    operation: dict[str, Any] = {"summary": summary, "responses": responses}
    if body is not None:
        operation["requestBody"] = {
            "required": body == "NewMessage",
            "content": {"application/json": {"schema": _ref(body)}},
        }
    if security is not None:
        operation["security"] = security
    return operation


def _error(description: str, status: str) -> dict[str, Any]:
    response: dict[str, Any] = {
        "description": description,
        "content": {"application/json": {"schema": _ref("ErrorBody")}},
    }
    if status in ("429", "503"):
        response["headers"] = {
            "Retry-After": {"description": "Seconds to wait", "schema": {"type": "integer"}}
        }
    return response


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def _path_parameter() -> dict[str, Any]:
    return {
        "name": "session_id",
        "in": "path",
        "required": True,
        "schema": {"type": "string"},
        "description": "The id `POST …/sessions` returned.",
    }
