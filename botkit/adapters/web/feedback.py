"""Votes on answers, and forgetting a user, over HTTP (`botkit.feedback`, `botkit.privacy`):

    POST /v1/sessions/{id}/messages/{message_id}/feedback     {"score": 1|-1, "comment"}
    DELETE /v1/users/{user_id}                                 (keyed)
    POST /chat/sessions/{id}/messages/{message_id}/feedback   (the chat page's buttons)

An answer is named by its session and the `message_id` its reply gave. An answer
that no longer exists is a 404 to the API, and a note to show on the chat page.
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from botkit.adapters.web.api import KeyAccess
from botkit.adapters.web.protocol import ApiError, body_limit, endpoint, read_json
from botkit.adapters.web.schemas import FeedbackResult, NewFeedback, UserForgotten
from botkit.adapters.web.sessions import CHANNEL, PUBLIC, Session, Sessions
from botkit.feedback import Votes
from botkit.outcomes import OutcomeRecorder
from botkit.privacy import forget
from botkit.stores.base import Store


class FeedbackRoutes:
    """The routes above, for the sessions API and the chat page."""

    def __init__(
        self,
        *,
        votes: Votes,
        sessions: Sessions,
        store: Store,
        recorder: OutcomeRecorder,
        access: KeyAccess,
        page: bool,
    ) -> None:
        self._votes = votes
        self._sessions = sessions
        self._store = store
        self._recorder = recorder
        self._access = access
        self._page = page

    def routes(self) -> list[Route]:
        vote = "/sessions/{session_id}/messages/{message_id}/feedback"
        return [
            Route(f"/v1{vote}", endpoint(self.api_vote), methods=["POST"]),
            Route("/v1/users/{user_id}", endpoint(self.forget_user), methods=["DELETE"]),
            Route(f"/chat{vote}", endpoint(self.page_vote), methods=["POST"]),
        ]

    async def api_vote(self, request: Request) -> Response:
        owner = self._access.owner(request)
        session = await self._sessions.find(request.path_params["session_id"], owner=owner)
        result = await self._vote(request, session)
        if result.status == "gone":
            raise ApiError(404, "not_found", "no answer to that message in this session")
        return JSONResponse(result.model_dump(mode="json"))

    async def page_vote(self, request: Request) -> Response:
        if not self._page:
            raise ApiError(403, "chat_page_off", "the public chat is turned off on this server")
        session = await self._sessions.find(request.path_params["session_id"], owner=PUBLIC)
        return JSONResponse((await self._vote(request, session)).model_dump(mode="json"))

    async def forget_user(self, request: Request) -> Response:
        """Forget a user for every bot (the web sessions made for them go too)."""
        self._access.owner(request)
        user = request.path_params["user_id"]
        done = await forget(self._store, user, recorder=self._recorder)
        forgotten = UserForgotten(
            user=user,
            conversations=done.conversations,
            shared=done.shared,
            messages=done.messages,
            votes=done.votes,
            handoffs=done.handoffs,
            usage_rows=done.usage_rows,
        )
        return JSONResponse(forgotten.model_dump(mode="json"))

    async def _vote(self, request: Request, session: Session) -> FeedbackResult:
        body = await read_json(request, NewFeedback, max_bytes=body_limit(0))
        cast = await self._votes.cast(
            bot=session.bot,
            channel=CHANNEL,
            conversation_id=session.id,
            message_id=request.path_params["message_id"],
            user=session.user,
            score=body.score,
            comment=body.comment,
        )
        if cast.status == "off":
            raise ApiError(
                409,
                "feedback_off",
                f"bot {session.bot!r} takes no votes (feedback = false in bots/{session.bot}.toml)",
            )
        return FeedbackResult(status=cast.status, offer_person=cast.offer_person, note=cast.note)
