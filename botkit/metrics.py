"""Prometheus metrics of a process: its replies (fed by the pipelines' reply listeners) and
its handoffs (fed by the handoff service's listeners).

Each `ReplyMetrics` has a registry of its own rather than prometheus_client's global
one, so several apps in one process (tests, embedding) never collide.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

from botkit.handoff import Handoffs
from botkit.llm.base import Completion
from botkit.messages import Handoff, IncomingMessage, Reply
from botkit.pipeline import Pipeline

CONTENT_TYPE = CONTENT_TYPE_LATEST

# LLM answers take seconds, not milliseconds: the default buckets stop at 10 s.
LATENCY_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 4.0, 8.0, 15.0, 30.0, 60.0, 120.0)
# A customer waits minutes for a person.
WAIT_BUCKETS = (5.0, 15.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1200.0, 3600.0)


class ReplyMetrics:
    """Messages, reply latency, LLM tokens and errors, by channel and bot."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self._children: dict[tuple[Any, ...], Any] = {}
        self.messages = Counter(
            "botkit_messages",
            "Messages answered, by channel, bot and kind of reply.",
            ["channel", "bot", "kind"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "botkit_reply_seconds",
            "Seconds from a message's arrival to its whole reply.",
            ["channel", "bot"],
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.tokens = Counter(
            "botkit_llm_tokens",
            "LLM tokens spent, by bot and type (prompt or completion).",
            ["bot", "type"],
            registry=self.registry,
        )
        self.errors = Counter(
            "botkit_errors",
            "Replies the LLM could not give (answered from the FAQ instead), by bot and kind.",
            ["bot", "kind"],
            registry=self.registry,
        )

        self.handoffs = Counter(
            "botkit_handoffs",
            "Conversations handed to people, by bot and what asked for it.",
            ["bot", "trigger"],
            registry=self.registry,
        )
        self.handoff_wait = Histogram(
            "botkit_handoff_wait_seconds",
            "Seconds from a handoff to a person taking it (or to its timeout).",
            ["bot", "outcome"],
            buckets=WAIT_BUCKETS,
            registry=self.registry,
        )

    def observe(self, message: IncomingMessage, reply: Reply | Completion, seconds: float) -> None:
        """A pipeline reply listener, and its completion listener (answers outside a
        conversation: `/v1/answers`, `/v1/chat/completions`). For every message: its label
        children are cached, as `labels()` costs more than the rest of this together."""
        channel, bot = message.channel, message.bot
        self._child(self.messages, channel, bot, reply.kind).inc()
        self._child(self.latency, channel, bot).observe(seconds)
        if reply.usage.prompt_tokens:
            self._child(self.tokens, bot, "prompt").inc(reply.usage.prompt_tokens)
        if reply.usage.completion_tokens:
            self._child(self.tokens, bot, "completion").inc(reply.usage.completion_tokens)
        if reply.error:
            self.errors.labels(bot, reply.error).inc()

    def _child(self, metric: Any, *labels: str) -> Any:
        key = (id(metric), *labels)
        child = self._children.get(key)
        if child is None:
            child = self._children[key] = metric.labels(*labels)
        return child

    def observe_handoff(self, event: str, handoff: Handoff) -> None:
        """A handoff listener."""
        if event == "requested":
            self.handoffs.labels(handoff.bot, handoff.trigger).inc()
        elif event in ("taken", "timeout"):
            outcome = "taken" if event == "taken" else "timeout"
            self.handoff_wait.labels(handoff.bot, outcome).observe(
                max(0.0, handoff.updated - handoff.created)
            )

    def attach(self, pipelines: Iterable[Pipeline], handoffs: Handoffs | None = None) -> None:
        for pipeline in pipelines:
            pipeline.listeners.append(self.observe)
            pipeline.completion_listeners.append(self.observe)
        if handoffs is not None:
            handoffs.listeners.append(self.observe_handoff)

    def render(self) -> bytes:
        """The Prometheus text exposition of every metric."""
        return generate_latest(self.registry)
