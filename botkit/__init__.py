"""botkit: customer-support chatbots on any OpenAI-compatible LLM.

Names are imported on first use, so the `botkit` command starts fast.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

_EXPORTS = {
    "BotApp": "botkit.app",
    "BotDefinition": "botkit.home",
    "BotHome": "botkit.home",
    "BotSettings": "botkit.settings",
    "BotkitError": "botkit.errors",
    "ChatParams": "botkit.llm.params",
    "Completion": "botkit.llm.base",
    "CompletionClient": "botkit.llm.client",
    "ConfigError": "botkit.errors",
    "ConversationStore": "botkit.stores.base",
    "FaqIndex": "botkit.prompting.retrieval",
    "FaqResponder": "botkit.llm.offline",
    "FaqSnippet": "botkit.prompting.faq",
    "IncomingMessage": "botkit.messages",
    "LLMError": "botkit.errors",
    "LLMResponder": "botkit.llm.responder",
    "LLMSettings": "botkit.settings",
    "MemoryStore": "botkit.stores.memory",
    "Pipeline": "botkit.pipeline",
    "Problem": "botkit.errors",
    "Prompt": "botkit.prompting.composer",
    "PromptComposer": "botkit.prompting.composer",
    "Reply": "botkit.messages",
    "ReplyStream": "botkit.pipeline",
    "Responder": "botkit.llm.base",
    "Settings": "botkit.settings",
    "StoreError": "botkit.errors",
    "StoreSettings": "botkit.settings",
    "Turn": "botkit.messages",
    "UnknownBotError": "botkit.errors",
    "Usage": "botkit.messages",
    "open_store": "botkit.stores",
}

__all__ = [
    "BotApp",
    "BotDefinition",
    "BotHome",
    "BotSettings",
    "BotkitError",
    "ChatParams",
    "Completion",
    "CompletionClient",
    "ConfigError",
    "ConversationStore",
    "FaqIndex",
    "FaqResponder",
    "FaqSnippet",
    "IncomingMessage",
    "LLMError",
    "LLMResponder",
    "LLMSettings",
    "MemoryStore",
    "Pipeline",
    "Problem",
    "Prompt",
    "PromptComposer",
    "Reply",
    "ReplyStream",
    "Responder",
    "Settings",
    "StoreError",
    "StoreSettings",
    "Turn",
    "UnknownBotError",
    "Usage",
    "open_store",
]


def __getattr__(name: str) -> Any:
    if name == "__version__":
        # Read when asked for, not on import: importing importlib.metadata costs 25 ms,
        # a fifth of `botkit --help`. pyproject.toml holds the only version number.
        from importlib.metadata import PackageNotFoundError, version

        try:
            globals()[name] = version("botkit")
        except PackageNotFoundError:  # imported from a checkout that was never installed
            globals()[name] = "0+unknown"
        return globals()[name]
    if name not in _EXPORTS:
        raise AttributeError(f"module 'botkit' has no attribute {name!r}")
    value = getattr(import_module(_EXPORTS[name]), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return [*globals(), *__all__]


if TYPE_CHECKING:
    __version__: str

    from botkit.app import BotApp
    from botkit.errors import (
        BotkitError,
        ConfigError,
        LLMError,
        Problem,
        StoreError,
        UnknownBotError,
    )
    from botkit.home import BotDefinition, BotHome
    from botkit.llm.base import Completion, Responder
    from botkit.llm.client import CompletionClient
    from botkit.llm.offline import FaqResponder
    from botkit.llm.params import ChatParams
    from botkit.llm.responder import LLMResponder
    from botkit.messages import IncomingMessage, Reply, Turn, Usage
    from botkit.pipeline import Pipeline, ReplyStream
    from botkit.prompting.composer import Prompt, PromptComposer
    from botkit.prompting.faq import FaqSnippet
    from botkit.prompting.retrieval import FaqIndex
    from botkit.settings import BotSettings, LLMSettings, Settings, StoreSettings
    from botkit.stores import open_store
    from botkit.stores.base import ConversationStore
    from botkit.stores.memory import MemoryStore
