"""A caller's own completion parameters: a session's `completion`, a chat-completions
request's sampling parameters, as far as the bot's `session_overrides` allows them."""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any

from botkit.adapters.web.protocol import ApiError
from botkit.errors import InvalidParameterError
from botkit.home import BotDefinition
from botkit.pipeline import Pipeline


def allowed(bot: BotDefinition, given: Mapping[str, Any], *, field: str) -> dict[str, Any]:
    """`given` (the parameters set), or a 422 naming the first one the bot does not allow."""
    permitted = bot.settings.session_overrides
    for name in given:
        if name not in permitted:
            listed = ", ".join(permitted) if permitted else "none"
            raise ApiError(
                422,
                "invalid_request",
                f"{field}.{name}: bot {bot.name!r} does not let a session set it (allowed: "
                f"{listed}; see session_overrides in bots/{bot.name}.toml)",
                param=f"{field}.{name}",
            )
    return dict(given)


def tuned(pipeline: Pipeline, overrides: Mapping[str, Any], *, handoff: bool = True) -> Pipeline:
    """The pipeline answering with `overrides` (and without the handoff tool, unless
    `handoff`); a bot answering offline has no parameters to change."""
    from botkit.llm.responder import LLMResponder

    responder = pipeline.responder
    if not isinstance(responder, LLMResponder):
        return pipeline
    try:
        changed = responder.tuned(overrides, handoff=handoff)
    except InvalidParameterError as err:
        raise ApiError(422, "invalid_request", str(err)) from err
    if changed is responder:
        return pipeline
    # A copy, as the pipeline takes for every message: the bot's own stays as it is.
    pipeline = copy.copy(pipeline)
    pipeline.responder = changed
    return pipeline
