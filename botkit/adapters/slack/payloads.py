"""What botkit, and bolt before it, read of Slack's requests, checked before anything
reads them (see `botkit.adapters.payloads`).

    check_request   a signed HTTP request: an Events API body, an interactivity payload
                    (form `payload=`) or a slash command (a form)
    check_envelope  the same, as Socket Mode delivers it
    check_event, check_command, check_interaction
                    what one listener gets, checked again where a listener may be
                    reached without the two above

bolt reads who and where from every request before any listener runs (its
context: team, user, channel, the first authorization…, in the body and in the
objects it nests); those fields are checked in every request, the rest only in
the kinds botkit answers: events, the desk's buttons, the slash command.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, Discriminator, Field, Tag

from botkit.adapters.payloads import Checked, check
from botkit.errors import PayloadError

__all__ = ["check_command", "check_envelope", "check_event", "check_interaction", "check_request"]

_TS = re.compile(r"[0-9]{1,10}\.[0-9]{1,9}")


def _timestamp(value: str) -> str:
    if not _TS.fullmatch(value):
        raise ValueError("is not a Slack timestamp")
    return value


Timestamp = Annotated[str, AfterValidator(_timestamp)]
"""Slack's `ts`: seconds, a dot, a sequence number ("1700000000.000100")."""


def _shape(value: Any) -> str:
    return "<object>" if isinstance(value, dict) else "<other>"


class _Ref(Checked):
    """A team, user, channel or enterprise given as an object rather than an id."""

    id: str | None = None
    team_id: str | None = None
    enterprise_id: str | None = None
    name: str | None = None
    username: str | None = None


# Chosen by the value's shape, so that an error names the field at fault, not each member.
_Id = Annotated[
    Annotated[_Ref, Tag("<object>")] | Annotated[str | None, Tag("<other>")], Discriminator(_shape)
]
"""An id, or an object that carries one (bolt takes `id` from either)."""
_Inner = Annotated[
    Annotated["_Where", Tag("<object>")] | Annotated[Any, Tag("<other>")], Discriminator(_shape)
]
"""An object bolt looks inside for who and where; it passes over anything else."""


class _Where(Checked):
    """Who and where, as bolt looks for them in a body and in the objects it nests."""

    enterprise: _Id = None
    enterprise_id: str | None = None
    team: _Id = None
    team_id: str | None = None
    user: _Id = None
    user_id: str | None = None
    channel: _Id = None
    channel_id: str | None = None
    thread_ts: str | None = None
    is_enterprise_install: bool | None = None
    function_execution_id: str | None = None
    bot_access_token: str | None = None
    authorizations: list[_Authorization] | None = None
    event: _Inner = None
    item: _Inner = None
    message: _Inner = None
    previous_message: _Inner = None
    assistant_thread: _Inner = None


class _Authorization(_Where):
    is_bot: bool | None = None  # names the bot's user until auth.test has answered


class _Request(_Where):
    """What bolt reads at the top of every request, besides who and where."""

    # Absent, or an object (not null): bolt's check for the bot's own events reads it in
    # every request.
    event: _Where = Field(default_factory=_Where)


class _Profile(Checked):
    display_name: str | None = None
    real_name: str | None = None


class _Event(_Where):
    """An event: what the channel and the desk read of it, besides bolt's fields."""

    type: str
    subtype: str | None = None
    hidden: bool | None = None
    bot_id: str | None = None
    bot_profile: dict[str, Any] | None = None
    ts: Timestamp | None = None
    thread_ts: Timestamp | None = None
    text: str | None = None
    user_profile: _Profile | None = None
    files: list[Any] | None = None
    parent_user_id: str | None = None
    channel_type: str | None = None


class _MessageEvent(_Event):
    """A message, or a mention: said by a person or a bot, in a channel, by its id."""

    user: str | None = None
    channel: str | None = None


_EVENTS: dict[str, type[_Event]] = {"message": _MessageEvent, "app_mention": _MessageEvent}


def _event(data: Any) -> type[_Event]:
    kind = data.get("type") if isinstance(data, dict) else None
    return _EVENTS.get(kind, _Event) if isinstance(kind, str) else _Event


class _View(Checked):
    app_installed_team_id: str | None = None
    team_id: str | None = None
    callback_id: str | None = None


class _FunctionData(Checked):
    execution_id: str | None = None
    inputs: dict[str, Any] | None = None


class _ResponseURL(Checked):
    response_url: str | None = None


class _Body(_Request):
    """Any JSON body or interactivity payload: its type, and what bolt reads of every one."""

    type: str
    # Absent, or of their type (not null): bolt reads them whenever they are there.
    view: _View = Field(default_factory=_View)
    response_urls: list[_ResponseURL] = Field(default_factory=list)
    function_data: _FunctionData | None = None
    response_url: str | None = None
    is_ext_shared_channel: bool | None = None
    callback_id: str | None = None
    trigger_id: str | None = None


class _EventCallback(_Body):
    type: Literal["event_callback"]
    event: Annotated[
        Annotated[_MessageEvent, Tag("<message>")] | Annotated[_Event, Tag("<other>")],
        Discriminator(lambda event: "<message>" if _event(event) is _MessageEvent else "<other>"),
    ]
    event_id: str | None = None


class _URLVerification(_Body):
    type: Literal["url_verification"]
    challenge: str


class _Message(_Where):
    """The message a button sits on: the desk answers in its thread."""

    ts: Timestamp | None = None
    thread_ts: Timestamp | None = None


class _Action(Checked):
    action_id: str
    block_id: str | None = None
    value: str | None = None
    type: str | None = None


class _BlockActions(_Body):
    type: Literal["block_actions"]
    # bolt picks a button's listener by the first action's id.
    actions: Annotated[list[_Action], Field(min_length=1)]
    message: _Message | None = None


class _Command(_Request):
    """A slash command: a form, so every value is text (over Socket Mode, JSON)."""

    command: str
    trigger_id: str  # how a replay is recognised
    user_id: str
    channel_id: str
    text: str | None = None
    user_name: str | None = None
    response_url: str | None = None


_BODIES: dict[str, type[_Body]] = {
    "event_callback": _EventCallback,
    "url_verification": _URLVerification,
    "block_actions": _BlockActions,
}


def check_request(data: Mapping[str, Any], *, form: bool) -> None:
    """A signed request as `events.parse_request` read it; `form`: it came form-encoded,
    so it is a slash command or carries an interactivity `payload`."""
    if not form:
        check(_body(data), data)
    elif "payload" in data:
        try:
            payload = json.loads(data["payload"])
        except (ValueError, RecursionError) as err:
            raise PayloadError(f"payload: not JSON ({err})") from None
        check(_body(payload), payload, "payload.")
    else:
        check(_Command, data)


def check_envelope(kind: str, payload: Any) -> None:
    """What a Socket Mode envelope of type `kind` carries."""
    check(_Command if kind == "slash_commands" else _body(payload), payload)


def check_event(event: Any) -> None:
    """An event alone (the `event` of an Events API body)."""
    check(_event(event), event, "event.")


def check_command(command: Any) -> None:
    """A slash command, as its listener gets it."""
    check(_Command, command)


def check_interaction(body: Any) -> None:
    """An interactivity payload, as a button's listener gets it."""
    check(_body(body), body)


def _body(data: Any) -> type[_Body]:
    kind = data.get("type") if isinstance(data, dict) else None
    return _BODIES.get(kind, _Body) if isinstance(kind, str) else _Body
