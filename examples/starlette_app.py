"""botkit inside your own Starlette app (a FastAPI app is a Starlette app: the same code
works there): a bot defined in code, opened and closed with the app's lifespan, your own
route that streams its answers, and botkit's sessions API and chat page under /support/.

    BOTKIT_WEB_API_KEYS=key-for-crm uvicorn --factory starlette_app:main_app \
        --app-dir examples --port 8000
    curl -N localhost:8000/chat -d '{"user": "ann", "message": "When are you open?"}'
    open http://localhost:8000/support/      # the chat page; the API at /support/v1/
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Mount, Route

from botkit import BotApp, BotDefinition, IncomingMessage, Settings
from botkit.adapters import web

SHOP = BotDefinition.from_values(
    "shop",
    system="""\
You are the support assistant of Acme Boxes. Answer briefly, from these notes:
{% for snippet in faq %}
- {{ snippet.question }} {{ snippet.answer }}
{% endfor %}
""",
    faq={
        "hours": {
            "question": "When are you open?",
            "questions": ["opening hours"],
            "answer": "We are open Monday to Friday, 9:00 to 17:00.",
        },
    },
)


def build_app(settings: Settings) -> Starlette:
    # One BotApp for the process: its store and LLM clients, opened in the lifespan.
    bots = BotApp(settings=settings, bots=[SHOP])
    # botkit's sessions API and chat page, as an app to mount (keys: settings.web).
    support = web.asgi_app(bots)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        async with bots, support:  # support closes first: its answers finish, then the store
            yield

    async def chat(request: Request) -> Response:
        data = await request.json()
        if not isinstance(data, dict) or not {"user", "message"} <= data.keys():
            return JSONResponse({"error": 'send {"user": …, "message": …}'}, status_code=422)
        message = IncomingMessage(
            channel="web",
            bot="shop",
            conversation_id=str(data["user"]),  # one conversation per user: it remembers
            user_id=str(data["user"]),
            text=str(data["message"]),
        )
        # The answer's text as the model writes it; its Reply is `stream.reply` at the end.
        stream = bots.pipelines["shop"].stream(message)
        return StreamingResponse(stream, media_type="text/plain; charset=utf-8")

    routes = [Route("/chat", chat, methods=["POST"]), Mount("/support", support)]
    return Starlette(routes=routes, lifespan=lifespan)


def main_app() -> Starlette:
    # from_environment: an LLM when BOTKIT_LLM_API_KEY or OPENAI_API_KEY is set, else the FAQ.
    return build_app(Settings.from_environment())
