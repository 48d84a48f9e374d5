"""Every exception botkit raises on purpose.

    BotkitError
    ├── ConfigError                a bot author's mistake: settings, bots/NAME.toml, a prompt
    │   │                          folder; carries one `Problem` (file, line, message) per fault
    │   └── UnknownBotError        no prompts/NAME/ folder in the bot home
    ├── StoreError                 the conversation store cannot be opened or used
    │   └── LeaseLost              a write refused: the conversation's lock passed to another
    │                              worker (botkit.stores.base)
    ├── DeliveryError              a customer's platform refused a message for good (blocked
    │                              bot, deleted session): not worth trying again
    ├── PayloadError               a platform's request or update has a field of a type botkit
    │                              cannot read: acknowledged, logged in one line, ignored
    └── LLMError                   a chat-completions call failed; carries the API's message,
        │                          its error code, the HTTP status and the request id
        ├── InvalidParameterError  a request parameter is out of range (checked before sending)
        ├── APIConnectionError     the server could not be reached, or dropped the connection
        │   └── APITimeoutError    no answer in time
        ├── MalformedResponseError the answer was not a chat completion
        ├── StreamInterruptedError a streamed answer broke off; carries the text received so far
        └── APIStatusError         the API answered with an error status
            ├── BadRequestError        400
            │   └── ContextLengthError     the prompt is longer than the model's context
            ├── AuthenticationError    401, 403
            ├── NotFoundError          404, e.g. an unknown model
            ├── RateLimitError         429; `retry_after` when the API says when to retry
            │   └── QuotaExceededError     429 insufficient_quota: retrying cannot help
            └── ServerError            5xx

Errors are translated where they cross a boundary (`raise ... from err`), so a
caller never has to know about jinja2, yaml, sqlite3 or httpx exceptions.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path


class BotkitError(Exception):
    """Base class of all botkit errors."""


@dataclass(frozen=True, slots=True)
class Problem:
    """One fault in a bot's files (or a setting, or an option), printed as `file:line: message`."""

    path: Path | str
    message: str
    line: int | None = None

    def __str__(self) -> str:
        where = f"{self.path}:{self.line}" if self.line else str(self.path)
        return f"{where}: {self.message}"


class ConfigError(BotkitError):
    """Settings or a bot's files are invalid; `problems` lists every fault found."""

    def __init__(self, problems: Iterable[Problem]) -> None:
        self.problems = list(problems)
        super().__init__("\n".join(str(p) for p in self.problems))


class UnknownBotError(ConfigError):
    """The bot home has no prompt folder of that name."""


class StoreError(BotkitError):
    """The conversation store is unreachable, corrupt or locked."""


class DeliveryError(BotkitError):
    """A message cannot be delivered to a customer, and trying again will not help."""


class PayloadError(BotkitError):
    """Slack or Telegram sent something whose fields botkit cannot read; the message names
    the first such field (`event.subtype: …`)."""


class LLMError(BotkitError):
    """A chat-completions call failed."""

    retryable = False

    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        code: str | None = None,
        request_id: str | None = None,
        retry_after: float | None = None,
        should_retry: bool | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.status = status
        self.code = code
        self.request_id = request_id
        self.retry_after = retry_after
        # The server's own verdict (x-should-retry) overrides the class default;
        # a request timeout (408) or a conflict (409) is worth another try.
        if should_retry is not None:
            self.retryable = should_retry
        elif status in (408, 409):
            self.retryable = True

    def __str__(self) -> str:
        details = [f"HTTP {self.status}" if self.status else "", self.code or ""]
        if self.request_id:
            details.append(f"request {self.request_id}")
        suffix = ", ".join(d for d in details if d)
        return f"{self.message} ({suffix})" if suffix else self.message


class InvalidParameterError(LLMError, ValueError):
    """A request parameter is out of the API's range; nothing was sent."""


class APIConnectionError(LLMError):
    retryable = True


class APITimeoutError(APIConnectionError):
    pass


class MalformedResponseError(LLMError):
    pass


class StreamInterruptedError(LLMError):
    """A streamed answer broke off; `partial` is the text that did arrive."""

    def __init__(self, message: str, *, partial: str, request_id: str | None = None) -> None:
        super().__init__(message, request_id=request_id)
        self.partial = partial


class APIStatusError(LLMError):
    """The API answered with an error status."""


class BadRequestError(APIStatusError):
    pass


class ContextLengthError(BadRequestError):
    pass


class AuthenticationError(APIStatusError):
    pass


class NotFoundError(APIStatusError):
    pass


class RateLimitError(APIStatusError):
    retryable = True


class QuotaExceededError(RateLimitError):
    retryable = False


class ServerError(APIStatusError):
    retryable = True
