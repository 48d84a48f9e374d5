"""The OpenAPI 3.1 document of the web channel; bodies come from the pydantic models in use."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from pydantic import BaseModel
from pydantic.json_schema import models_json_schema

from botkit.adapters.web import schemas as s
from botkit.adapters.web.api import IDEMPOTENCY_KEY
from botkit.adapters.web.events import EVENT_ID
from botkit.home import BotDefinition

REQUESTS: list[type[BaseModel]] = [
    s.NewSession,
    s.NewPublicSession,
    s.NewMessage,
    s.NewAnswer,
    s.ChatCompletionRequest,
    s.NewHandoff,
    s.TakeHandoff,
    s.AgentMessage,
    s.ResolveHandoff,
    s.NewFeedback,
]
RESPONSES: list[type[BaseModel]] = [
    s.SessionCreated,
    s.SessionState,
    s.MessageReply,
    s.StreamDelta,
    s.Answer,
    s.ChatCompletion,
    s.ChatCompletionChunk,
    s.OpenAIErrorBody,
    s.ModelList,
    s.Health,
    s.ErrorBody,
    s.PageSession,
    s.PageReply,
    s.HandoffInfo,
    s.HandoffList,
    s.DeskEvent,
    s.FeedbackResult,
    s.UserForgotten,
]

ERRORS = {
    "401": ("Unauthorized", "No API key, or not a valid one."),
    "403": ("Forbidden", "The public chat is turned off on this server."),
    "404": (
        "NotFound",
        "No such session, answer or handoff (or not one of this key's sessions).",
    ),
    "409": (
        "Conflict",
        "`handoff_closed`: the handoff is over; `handoff_taken`: another person has it; "
        "`handoff_unavailable`: the bot has no [handoff] table; `feedback_off`: the bot "
        "takes no votes (`feedback = false`); `idempotency_in_progress`: "
        "the first request with this Idempotency-Key is still being answered (retry after "
        "`Retry-After` s).",
    ),
    "413": ("TooLarge", "The body or the message is too large."),
    "422": (
        "Invalid",
        "The body is not JSON, not an object, or a field is missing or wrong; a header "
        "(Idempotency-Key, Last-Event-ID) is malformed; or an Idempotency-Key was used for "
        "another message (`idempotency_key_reused`).",
    ),
    "429": ("RateLimited", "Too many messages from this client; retry after `Retry-After` s."),
    "503": (
        "Unavailable",
        "The server is shutting down, or the store cannot be reached (nothing was kept); "
        "retry after `Retry-After` s.",
    ),
}


def _event(name: str | None, data: str) -> dict[str, Any]:
    """One Server-Sent Event as OpenAPI 3.1 describes a stream's items: its fields, with
    the JSON in `data`."""
    event: dict[str, Any] = {
        "type": "object",
        "required": ["data"],
        "properties": {
            "data": {
                "type": "string",
                "contentMediaType": "application/json",
                "contentSchema": _ref(data),
            },
            "id": {"type": "string"},
            "retry": {"type": "integer"},
        },
    }
    if name is not None:
        event["required"].append("event")
        event["properties"]["event"] = {"const": name}
    return event


def _events(description: str, events: dict[str, str]) -> dict[str, Any]:
    return {"description": description, "anyOf": [_event(n, d) for n, d in events.items()]}


def reply_events(done: str) -> dict[str, Any]:
    return _events(SSE, {"delta": "StreamDelta", "done": done, "error": "ErrorBody"})


def live_events(message: str) -> dict[str, Any]:
    names = ("agent", "notice", "answer", "user")
    return _events(LIVE.format(model=message), dict.fromkeys(names, message))


def openai_events() -> dict[str, Any]:
    return {
        "description": OPENAI_SSE,
        "anyOf": [
            _event(None, "ChatCompletionChunk"),
            {
                "type": "object",
                "required": ["data"],
                "properties": {"data": {"const": "[DONE]"}},
            },
        ],
    }


OPENAI_SSE = (
    "Server-Sent Events, as OpenAI streams: `data:` lines, each a ChatCompletionChunk (the "
    "role, then text deltas, then the finish reason; with `stream_options.include_usage`, a "
    "last chunk with no choices and the usage), then `data: [DONE]`."
)
SSE = (
    "Server-Sent Events: `delta` events (data: StreamDelta) as the reply is generated, "
    "then one `done` event whose data is the whole reply (the JSON response's shape), "
    "or an `error` event (data: ErrorBody). A message relayed to the person handling "
    'the conversation has no deltas and a reply of kind "relayed" with empty text.'
)
LIVE = (
    "Server-Sent Events, each with an `id`, as messages are stored (by any worker): "
    "`agent` (a person's message, with their `name`), `notice` (`kind` handoff, joined, "
    "resolved or timeout), `answer` (the bot's) and `user`; the data is {model}. A comment "
    "line every 15 s keeps the connection open. Reconnect with `Last-Event-ID` to get "
    "exactly what was missed."
)
WEBHOOKS = (
    "POSTed by the webhook desk to the bot's `webhook_url`, signed: `X-Botkit-Signature: "
    "sha256=<hex>` is the HMAC-SHA256 of the raw body under BOTKIT_HANDOFF_WEBHOOK_SECRET. "
    "Answer 2xx; anything else (or no answer in 10 s) is retried with backoff for about "
    "two minutes, then logged. Events of one handoff arrive in order."
)
EVENT_TYPES = {
    "handoff.requested": "A conversation was handed over (with the last ten messages).",
    "handoff.message": "The customer wrote during the handoff.",
    "handoff.taken": "A person took the handoff.",
    "handoff.resolved": "The handoff ended: resolved, or cancelled by the customer.",
    "handoff.timeout": "Nobody took it in time; the bot answers again.",
    "handoff.delivery_failed": "A person's message could not reach the customer.",
}


BOT_FIELDS = {
    "NewSession": "bot",
    "NewPublicSession": "bot",
    "NewAnswer": "bot",
    "ChatCompletionRequest": "model",
}
"""Request fields naming a bot: the document lists the bots served there."""


def openapi_document(
    version: str,
    *,
    handoffs_api: bool = False,
    served: Sequence[BotDefinition] = (),
    max_message_chars: int | None = None,
) -> dict[str, Any]:
    """The document of a server serving the bots `served` (what their requests may say
    is then exact: which bots, which session parameters, how long a message);
    `handoffs_api` when a bot hands over to the webhook desk (whose routes,
    /v1/handoffs, and events are then described too)."""
    _, definitions = models_json_schema(
        [(model, "validation") for model in REQUESTS]
        + [(model, "serialization") for model in RESPONSES],
        ref_template="#/components/schemas/{model}",
    )
    schemas = definitions["$defs"]
    if served:
        _name_bots(schemas, [bot.name for bot in served])
        _allow_overrides(schemas, {key for bot in served for key in bot.settings.session_overrides})
    if max_message_chars is not None:
        _limit_messages(schemas, max_message_chars)
    desk_bots = [
        bot.name
        for bot in served
        if bot.settings.handoff is not None and bot.settings.handoff.desk == "webhook"
    ]
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
                    errors="401 404 409 413 422 503",
                    security=keyed,
                    parameters=[_idempotency_key()],
                ),
            },
            "/v1/sessions/{session_id}/events": {
                "parameters": session,
                "get": _live("The session's new messages, live", "SessionMessage", keyed),
            },
            "/v1/sessions/{session_id}/handoff": {
                "parameters": session,
                "post": _op(
                    "Hand the session to people (as /human): 201 with a new handoff, 200 "
                    "with the one already open",
                    body="NewHandoff",
                    ok=("201", "HandoffInfo"),
                    also=("200", "HandoffInfo"),
                    errors="401 404 409 413 422 503",
                    security=keyed,
                ),
            },
            **_feedback_paths(keyed),
            "/v1/answers": {
                "post": _op(
                    "Answer one question from the bot's FAQ and the documents given "
                    "(nothing is kept as a conversation)",
                    body="NewAnswer",
                    ok=("200", "Answer"),
                    errors="401 413 422 503",
                    security=keyed,
                )
            },
            "/v1/models": {
                "get": _op(
                    "The bots served, as botkit lists them (`models`) and as OpenAI does "
                    "(`data`): every bot is a model of /v1/chat/completions",
                    ok=("200", "ModelList"),
                    errors="401",
                    security=keyed,
                    openai=True,
                )
            },
            "/v1/chat/completions": {
                "post": _op(
                    "A bot's answer in OpenAI's chat-completions shape (`model` is the bot)",
                    body="ChatCompletionRequest",
                    ok=("200", "ChatCompletion"),
                    stream=openai_events(),
                    errors="401 404 413 422 503",
                    security=keyed,
                    openai=True,
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
            "/chat/sessions/{session_id}/events": {
                "parameters": session,
                "get": _live("A chat-page session's new messages, live", "PageMessage", None),
            },
            **(_handoff_paths(keyed, desk_bots) if handoffs_api else {}),
        },
        **({"webhooks": _webhooks()} if handoffs_api else {}),
        "components": {
            "schemas": schemas,
            "securitySchemes": {"apiKey": {"type": "http", "scheme": "bearer"}},
            "responses": {
                **{name: _error(text, status) for status, (name, text) in ERRORS.items()},
                **{
                    f"OpenAI{name}": _error(text, status, schema="OpenAIErrorBody")
                    for status, (name, text) in ERRORS.items()
                },
            },
        },
    }


def _feedback_paths(keyed: list[dict[str, list[str]]]) -> dict[str, Any]:
    """Votes on answers, and forgetting a user (`botkit.adapters.web.feedback`)."""
    answer = [
        _path_parameter(),
        _path_parameter("message_id", "The `message_id` of the reply (the message it answers)."),
    ]
    return {
        "/v1/sessions/{session_id}/messages/{message_id}/feedback": {
            "parameters": answer,
            "post": _op(
                "Vote on the answer to a message: 👍 or 👎, one vote per answer (a second "
                "replaces the first)",
                body="NewFeedback",
                ok=("200", "FeedbackResult"),
                errors="401 404 409 413 422 503",
                security=keyed,
            ),
        },
        "/v1/users/{user_id}": {
            "parameters": [_path_parameter("user_id", "The `user` the sessions were made for.")],
            "delete": _op(
                "Forget a user: their conversations, votes, handoffs, and their name on token "
                "rows, for every bot, whichever key made their sessions",
                ok=("200", "UserForgotten"),
                errors="401 503",
                security=keyed,
            ),
        },
        "/chat/sessions/{session_id}/messages/{message_id}/feedback": {
            "parameters": answer,
            "post": _op(
                "Vote on a chat-page answer",
                body="NewFeedback",
                ok=("200", "FeedbackResult"),
                errors="403 404 409 413 422 503",
            ),
        },
    }


MESSAGE_TEXTS = {
    "NewMessage": ["message"],
    "SeedMessage": ["content"],
    "NewAnswer": ["question"],
    "AgentMessage": ["text"],
}
"""Request fields that hold one message: at most the server's message size (413 beyond)."""


def _limit_messages(schemas: dict[str, Any], max_chars: int) -> None:
    for schema, fields in MESSAGE_TEXTS.items():
        for field in fields:
            schemas[schema]["properties"][field]["maxLength"] = max_chars
    for name in ("TextPart", "UserTextPart"):
        schemas[name]["properties"]["text"]["maxLength"] = max_chars
    for name in ("InstructionMessage", "UserMessage", "EarlierAnswer"):
        for option in schemas[name]["properties"]["content"]["anyOf"]:
            if option.get("type") == "string":
                option["maxLength"] = max_chars


def _allow_overrides(schemas: dict[str, Any], allowed: set[str]) -> None:
    """Session parameters: only those some bot served lets a session set."""
    params = schemas["CompletionParams"]
    params["properties"] = {k: v for k, v in params["properties"].items() if k in allowed}


def _name_bots(schemas: dict[str, Any], bots: list[str]) -> None:
    for schema, field in BOT_FIELDS.items():
        prop = schemas[schema]["properties"][field]
        if "anyOf" in prop:  # optional: one of the bots, or null
            prop["anyOf"] = [{"type": "string", "enum": bots}, {"type": "null"}]
        else:
            prop.update({"type": "string", "enum": bots})


def _handoff_paths(keyed: list[dict[str, list[str]]], desk_bots: list[str]) -> dict[str, Any]:
    handoff = [_path_parameter("handoff_id", "The `handoff_id` a listing or an event gave.")]
    return {
        "/v1/handoffs": {
            "get": _op(
                "Waiting and taken handoffs of the webhook desk, oldest first",
                ok=("200", "HandoffList"),
                errors="401 422 503",
                security=keyed,
                parameters=[
                    {
                        "name": "bot",
                        "in": "query",
                        "required": False,
                        "schema": {"type": "string", **({"enum": desk_bots} if desk_bots else {})},
                        "description": "Only this bot's handoffs.",
                    }
                ],
            )
        },
        "/v1/handoffs/{handoff_id}/take": {
            "parameters": handoff,
            "post": _op(
                "Take the handoff: the customer is told the person joined",
                body="TakeHandoff",
                ok=("200", "HandoffInfo"),
                errors="401 404 409 413 422 503",
                security=keyed,
            ),
        },
        "/v1/handoffs/{handoff_id}/messages": {
            "parameters": handoff,
            "post": _op(
                "Send the customer a message (stored at once, delivered on their channel; a "
                "failure arrives as handoff.delivery_failed)",
                body="AgentMessage",
                ok=("202", "HandoffInfo"),
                errors="401 404 409 413 422 503",
                security=keyed,
            ),
        },
        "/v1/handoffs/{handoff_id}/resolve": {
            "parameters": handoff,
            "post": _op(
                "Resolve the handoff: the customer is told, and the bot answers again",
                body="ResolveHandoff",
                ok=("200", "HandoffInfo"),
                errors="401 404 409 413 422 503",
                security=keyed,
            ),
        },
    }


def _webhooks() -> dict[str, Any]:
    return {
        name: {
            "post": {
                "summary": summary,
                "description": WEBHOOKS,
                "parameters": [
                    {
                        "name": "X-Botkit-Signature",
                        "in": "header",
                        "required": True,
                        "schema": {"type": "string", "pattern": "^sha256=[0-9a-f]{64}$"},
                    }
                ],
                "requestBody": {
                    "required": True,
                    "content": {"application/json": {"schema": _ref("DeskEvent")}},
                },
                "responses": {"200": {"description": "Received (any 2xx)."}},
            }
        }
        for name, summary in EVENT_TYPES.items()
    }


def _live(summary: str, model: str, security: list[dict[str, list[str]]] | None) -> dict[str, Any]:
    operation: dict[str, Any] = {
        "summary": summary,
        "parameters": [
            {
                "name": "Last-Event-ID",
                "in": "header",
                "required": False,
                "schema": {"type": "string", "pattern": f"^{EVENT_ID.pattern}$"},
                "description": "The `id` of the last event received (or the state's "
                "`last_event_id`): only what came after it is sent. Default: from now.",
            },
            {
                "name": "after",
                "in": "query",
                "required": False,
                "schema": {"type": "string", "pattern": f"^{EVENT_ID.pattern}$"},
                "description": "The same as Last-Event-ID, for clients that cannot set headers.",
            },
        ],
        "responses": {
            "200": {
                "description": summary,
                "content": {"text/event-stream": {"schema": live_events(model)}},
            },
            **{
                code: {"$ref": f"#/components/responses/{ERRORS[code][0]}"}
                for code in (["401"] if security else ["403"]) + ["404", "422", "503"]
            },
        },
    }
    if security is not None:
        operation["security"] = security
    return operation


def _idempotency_key() -> dict[str, Any]:
    return {
        "name": "Idempotency-Key",
        "in": "header",
        "required": False,
        "schema": {"type": "string", "pattern": f"^{IDEMPOTENCY_KEY.pattern}$"},
        "description": "A key of your choosing (a UUID, say): a repeat with the same key "
        "within 24 hours stores nothing again and gets the first reply (waiting for it "
        "if need be), with `Idempotent-Replayed: true`.",
    }


def _op(
    summary: str,
    *,
    ok: tuple[str, str | None],
    also: tuple[str, str] | None = None,
    body: str | None = None,
    errors: str = "",
    stream: bool | dict[str, Any] = False,
    security: list[dict[str, list[str]]] | None = None,
    parameters: list[dict[str, Any]] | None = None,
    openai: bool = False,
) -> dict[str, Any]:
    status, schema = ok
    success: dict[str, Any] = {"description": summary}
    if schema is not None:
        success["content"] = {"application/json": {"schema": _ref(schema)}}
    if stream:
        events = stream if isinstance(stream, dict) else reply_events(schema or "")
        success["content"]["text/event-stream"] = {"schema": events}
    responses = {status: success}
    if also is not None:
        responses[also[0]] = {
            "description": summary,
            "content": {"application/json": {"schema": _ref(also[1])}},
        }
    prefix = "OpenAI" if openai else ""
    for code in errors.split():
        responses[code] = {"$ref": f"#/components/responses/{prefix}{ERRORS[code][0]}"}
    operation: dict[str, Any] = {"summary": summary, "responses": responses}
    if body is not None:
        operation["requestBody"] = {
            "required": body in REQUIRED_BODIES,
            "content": {"application/json": {"schema": _ref(body)}},
        }
    if security is not None:
        operation["security"] = security
    if parameters:
        operation["parameters"] = parameters
    return operation


REQUIRED_BODIES = (
    "NewMessage",
    "TakeHandoff",
    "AgentMessage",
    "NewAnswer",
    "ChatCompletionRequest",
    "NewFeedback",
)


def _error(description: str, status: str, *, schema: str = "ErrorBody") -> dict[str, Any]:
    response: dict[str, Any] = {
        "description": description,
        "content": {"application/json": {"schema": _ref(schema)}},
    }
    if status in ("409", "429", "503"):
        response["headers"] = {
            "Retry-After": {"description": "Seconds to wait", "schema": {"type": "integer"}}
        }
    return response


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def _path_parameter(
    name: str = "session_id", description: str = "The id `POST …/sessions` returned."
) -> dict[str, Any]:
    return {
        "name": name,
        "in": "path",
        "required": True,
        "schema": {"type": "string"},
        "description": description,
    }
