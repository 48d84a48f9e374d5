"""`POST /v1/answers`: one question answered from the bot's FAQ and the documents given,
with examples as earlier exchanges; a suggested reply for a person at a helpdesk, say.

The FAQ and the documents are ranked for the question together (each by BM25 with its
confidence, as the FAQ alone is for a message), and the best go to the bot's system
prompt; the bot's responder answers, with its limits, usage accounting and offline
fallback (the best match's text when it matches well enough). Nothing is stored as a
conversation.
"""

from __future__ import annotations

import logging
import secrets
from collections.abc import Mapping, Sequence

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from botkit.adapters.web.api import KeyAccess, choose_bot
from botkit.adapters.web.overrides import tuned
from botkit.adapters.web.protocol import ApiError, body_limit, endpoint, message_text, read_json
from botkit.adapters.web.schemas import (
    ANSWER_CHARACTERS,
    ANSWER_DOCUMENTS,
    Answer,
    AnswerSource,
    Document,
    Example,
    NewAnswer,
    TokenUsage,
)
from botkit.errors import ConfigError
from botkit.home import BotDefinition
from botkit.llm.base import Completion
from botkit.messages import IncomingMessage, Turn
from botkit.pipeline import Pipeline
from botkit.prompting.faq import FaqSnippet
from botkit.prompting.retrieval import FaqIndex, FaqMatch
from botkit.prompting.tokens import count_message_tokens

logger = logging.getLogger(__name__)

CHANNEL = "api"
"""The channel of /v1/answers' usage records (their conversation is "answers")."""
DOCUMENT = "document:"
"""How a document's snippet names its source: `document:INDEX`."""


def documents(given: Sequence[str | Document]) -> list[Document]:
    """The documents as titled texts, or a 413 when there are too many or too much."""
    if len(given) > ANSWER_DOCUMENTS:
        raise ApiError(
            413, "too_large", f"documents: more than {ANSWER_DOCUMENTS}", param="documents"
        )
    titled = [Document(text=d) if isinstance(d, str) else d for d in given]
    if sum(len(d.title) + len(d.text) for d in titled) > ANSWER_CHARACTERS:
        raise ApiError(
            413,
            "too_large",
            f"documents: more than {ANSWER_CHARACTERS:,} characters in all",
            param="documents",
        )
    return titled


def rank(bot: BotDefinition, question: str, given: Sequence[Document]) -> list[FaqMatch]:
    """The bot's FAQ snippets and the documents that match the question, best first, as
    many as a message's prompt would get."""
    settings = bot.settings
    top = max(settings.faq_top_k, 1)
    matches = bot.faq.search(question, top_k=top, min_confidence=settings.faq_min_score)
    if given:
        # A document is a passage, not an answer to a question someone asked: its text
        # counts as fully as a snippet's other questions do, not at an answer's half.
        snippets = [
            FaqSnippet(d.title, d.text, f"{DOCUMENT}{n}", questions=(d.text,))
            for n, d in enumerate(given)
        ]
        index = FaqIndex(snippets, language=settings.faq_language)
        matches += index.search(question, top_k=top, min_confidence=settings.faq_min_score)
    matches.sort(key=lambda match: match.confidence, reverse=True)
    return matches[:top]


def source(match: FaqMatch, given: Sequence[Document]) -> AnswerSource:
    score = round(match.confidence, 4)
    name = match.snippet.source
    if name.startswith(DOCUMENT):
        number = int(name.removeprefix(DOCUMENT))
        title = given[number].title or f"document {number + 1}"
        return AnswerSource(document=number, title=title, score=score)
    return AnswerSource(faq=name, score=score)


def examples(given: Sequence[Example]) -> list[Turn]:
    """The examples as the earlier turns of the conversation the model sees."""
    turns = []
    for example in given:
        turns.append(Turn("user", example.question, 0.0, count_message_tokens(example.question)))
        turns.append(Turn("assistant", example.answer, 0.0, count_message_tokens(example.answer)))
    return turns


async def answer_to(
    pipeline: Pipeline,
    message: IncomingMessage,
    history: Sequence[Turn],
    faq: Sequence[FaqMatch] | None = None,
    *,
    instructions: str = "",
) -> tuple[Completion, list[FaqMatch]]:
    """The bot's answer to `message` after `history`, and the matches its prompt had."""
    try:
        prompt = pipeline.composer.compose(message, history, faq=faq, instructions=instructions)
    except ConfigError as err:  # a template failing at run time: the fallback, as for messages
        logger.error("bot %s: cannot compose a prompt: %s", pipeline.bot.name, err)
        return fallback(pipeline, message), []
    completion: Completion | None = None
    async for item in pipeline.complete(prompt):
        if isinstance(item, Completion):
            completion = item
    assert completion is not None, "a responder ends with a Completion"
    return completion, prompt.faq


def fallback(pipeline: Pipeline, message: IncomingMessage) -> Completion:
    context = pipeline.composer.context(message)
    text = pipeline.bot.templates.render_or_default("fallback", context)
    return Completion(text=text, model="faq", kind="fallback")


class AnswersApi:
    """`POST /v1/answers`, with the sessions API's keys."""

    def __init__(
        self, *, pipelines: Mapping[str, Pipeline], access: KeyAccess, max_message_chars: int
    ) -> None:
        self._pipelines = pipelines
        self._access = access
        self._max_chars = max_message_chars

    def routes(self) -> list[Route]:
        return [Route("/v1/answers", endpoint(self.answer), methods=["POST"])]

    async def answer(self, request: Request) -> Response:
        owner = self._access.owner(request)
        limit = body_limit(ANSWER_CHARACTERS + self._max_chars * 41)
        body = await read_json(request, NewAnswer, max_bytes=limit)
        bot = choose_bot(body.bot, list(self._pipelines), default_first=False)
        question = message_text(body.question, max_chars=self._max_chars, field="question")
        given = documents(body.documents)
        pipeline = tuned(self._pipelines[bot], {}, handoff=False)
        message = IncomingMessage(
            channel=CHANNEL,
            bot=bot,
            conversation_id="answers",
            user_id=owner,
            text=question.strip(),
            message_id=f"ans_{secrets.token_urlsafe(12)}",
        )
        matches = rank(pipeline.bot, message.text, given)
        completion, used = await answer_to(pipeline, message, examples(body.examples), matches)
        usage = completion.usage
        answer = Answer(
            answer=completion.text,
            sources=[source(match, given) for match in used],
            usage=TokenUsage(
                prompt_tokens=usage.prompt_tokens,
                completion_tokens=usage.completion_tokens,
                total_tokens=usage.total_tokens,
            ),
            finish_reason=completion.finish_reason,
            kind=completion.kind,
        )
        return JSONResponse(answer.model_dump(mode="json"))
