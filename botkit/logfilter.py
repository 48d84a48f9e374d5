"""The log filter that keeps secrets out of every log line.

Libraries log what they send: httpx and python-telegram-bot log URLs with the bot
token in them, and request parameters with the webhook secret. A `SecretRedactor`
on the root handler sees every record that reaches it, from any logger, and
replaces each secret it knows, in the message and in the traceback, with
`<redacted>`. `botkit`'s command line puts one there and gives it every secret of
the `Settings` (any `SecretStr` field, found by walking the model) and the keys
of the bots' fallbacks.

    redactor = SecretRedactor(secrets_of(settings))
    for handler in logging.getLogger().handlers:
        handler.addFilter(redactor)
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator, Mapping
from urllib.parse import quote

from pydantic import BaseModel, SecretStr

REDACTED = "<redacted>"


def secrets_of(value: object) -> Iterator[str]:
    """Every `SecretStr` inside a pydantic model, dict, list or tuple, at any depth."""
    if isinstance(value, SecretStr):
        yield value.get_secret_value()
    elif isinstance(value, BaseModel):
        for name in type(value).model_fields:
            yield from secrets_of(getattr(value, name))
    elif isinstance(value, Mapping):
        for item in value.values():
            yield from secrets_of(item)
    elif isinstance(value, list | tuple | set | frozenset):
        for item in value:
            yield from secrets_of(item)


class SecretRedactor(logging.Filter):
    """Replaces known secrets in log records with `<redacted>`; add more with `add`."""

    def __init__(self, secrets: Iterable[str | SecretStr | None] = ()) -> None:
        super().__init__()
        self._secrets: list[str] = []
        self.add(*secrets)

    def add(self, *secrets: str | SecretStr | None) -> None:
        """Redact these too. A comma-separated list (web API keys) is redacted item by item."""
        for secret in secrets:
            if isinstance(secret, SecretStr):
                secret = secret.get_secret_value()
            if not secret or not secret.strip():
                continue
            forms = {secret.strip(), *(part.strip() for part in secret.split(","))}
            # A URL carries the secret percent-encoded (a Telegram token's ":" is "%3A").
            forms |= {quote(form, safe="") for form in forms}
            self._secrets.extend(form for form in forms if form and form not in self._secrets)
        # Longest first, so a secret containing another is replaced whole.
        self._secrets.sort(key=len, reverse=True)

    def redact(self, text: str) -> str:
        for secret in self._secrets:
            if secret in text:
                text = text.replace(secret, REDACTED)
        return text

    def filter(self, record: logging.LogRecord) -> bool:
        if not self._secrets:
            return True
        try:
            message = record.getMessage()
        except Exception:  # arguments that do not fit the format: keep both, redacted
            message = f"{record.msg} {record.args!r}"
            record.args = None
        redacted = self.redact(message)
        if redacted != message or record.args is None:
            record.msg, record.args = redacted, None
        if record.exc_info and not record.exc_text:
            # The handler's formatter uses `exc_text` when it is set: give it the redacted one.
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = self.redact(record.exc_text)
        if record.stack_info:
            record.stack_info = self.redact(record.stack_info)
        return True
