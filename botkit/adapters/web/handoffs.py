"""The handoffs API under /v1/handoffs: people at a helpdesk answer the conversations handed
to the webhook desk, with the sessions API's keys.

    GET  /v1/handoffs                  waiting and taken handoffs (`?bot=NAME`)
    POST /v1/handoffs/{id}/take        {"agent": "Anna", "agent_id"?}
    POST /v1/handoffs/{id}/messages    {"agent": "Anna", "text": "…"}   (takes it if nobody has)
    POST /v1/handoffs/{id}/resolve     {"agent"?}

Every key sees every handoff of the bots whose `[handoff]` desk is "webhook": the
keys are for the operator's own software. A handoff of another desk is not found.
"""

from __future__ import annotations

from collections.abc import Collection

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from botkit.adapters.web.api import KeyAccess
from botkit.adapters.web.protocol import ApiError, body_limit, endpoint, not_found, read_json
from botkit.adapters.web.schemas import (
    AgentMessage,
    HandoffInfo,
    HandoffList,
    ResolveHandoff,
    TakeHandoff,
)
from botkit.handoff import Handoffs, Result


class HandoffsApi:
    """People's side of the webhook desk, for the bots in `bots`."""

    def __init__(
        self,
        *,
        handoffs: Handoffs,
        bots: Collection[str],
        access: KeyAccess,
        max_message_chars: int,
    ) -> None:
        self._handoffs = handoffs
        self._bots = bots
        self._access = access
        self._max_chars = max_message_chars

    def routes(self) -> list[Route]:
        return [
            Route("/v1/handoffs", endpoint(self.list_handoffs), methods=["GET"]),
            Route("/v1/handoffs/{handoff_id}/take", endpoint(self.take), methods=["POST"]),
            Route("/v1/handoffs/{handoff_id}/messages", endpoint(self.say), methods=["POST"]),
            Route("/v1/handoffs/{handoff_id}/resolve", endpoint(self.resolve), methods=["POST"]),
        ]

    async def run(self) -> None:
        return None

    async def aclose(self) -> None:
        return None

    async def list_handoffs(self, request: Request) -> Response:
        self._access.owner(request)
        bot = request.query_params.get("bot")
        if bot is not None and bot not in self._bots:
            served = ", ".join(sorted(self._bots)) or "none"
            raise ApiError(
                422,
                "unknown_bot",
                f"bot: {bot!r} hands nothing to the webhook desk here (those that do: {served})",
            )
        open_ = await self._handoffs.store.handoffs_open(bot)
        listed = HandoffList(handoffs=[HandoffInfo.of(h) for h in open_ if h.bot in self._bots])
        return JSONResponse(listed.model_dump(mode="json"))

    async def take(self, request: Request) -> Response:
        handoff_id = await self._find(request)
        body = await read_json(request, TakeHandoff, max_bytes=body_limit(0))
        agent = body.agent.strip()
        result = await self._handoffs.take(
            handoff_id, agent_id=body.agent_id or agent, agent_name=agent
        )
        return _answer(result)

    async def say(self, request: Request) -> Response:
        handoff_id = await self._find(request)
        body = await read_json(request, AgentMessage, max_bytes=body_limit(self._max_chars))
        if not body.text.strip():
            raise ApiError(422, "invalid_request", "text: must not be empty")
        if len(body.text) > self._max_chars:
            raise ApiError(
                413, "message_too_large", f"text: longer than {self._max_chars} characters"
            )
        agent = body.agent.strip()
        result = await self._handoffs.say(
            handoff_id, agent_id=body.agent_id or agent, agent_name=agent, text=body.text
        )
        # Stored in the conversation; the customer's channel delivers it from the inbox.
        return _answer(result, status=202)

    async def resolve(self, request: Request) -> Response:
        handoff_id = await self._find(request)
        body = await read_json(request, ResolveHandoff, max_bytes=body_limit(0))
        agent = body.agent.strip() if body.agent else None
        return _answer(await self._handoffs.resolve(handoff_id, agent_name=agent))

    async def _find(self, request: Request) -> str:
        """The handoff's id, once the key is checked and the handoff is this desk's."""
        self._access.owner(request)
        handoff_id: str = request.path_params["handoff_id"]
        handoff = (
            await self._handoffs.store.handoff_get(handoff_id) if len(handoff_id) < 64 else None
        )
        if handoff is None or handoff.bot not in self._bots:
            raise not_found("handoff")
        return handoff_id


def _answer(result: Result, *, status: int = 200) -> Response:
    handoff = result.handoff
    if result.outcome == "unknown" or handoff is None:
        raise not_found("handoff")
    if result.outcome == "closed":
        raise ApiError(409, "handoff_closed", f"the handoff is over ({handoff.outcome})")
    if result.outcome == "taken":
        raise ApiError(409, "handoff_taken", f"{handoff.agent_name} has taken this handoff")
    return JSONResponse(HandoffInfo.of(handoff).model_dump(mode="json"), status_code=status)
