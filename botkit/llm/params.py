"""Chat-completions request parameters, checked against the API's ranges before sending."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, ValidationError, field_validator

from botkit.errors import InvalidParameterError

MAX_STOP_SEQUENCES = 4


class ChatParams(BaseModel):
    """Every sampling parameter the API documents for chat, plus `extra` passed through as-is.

    `None` means "leave it to the server's default" and is not sent.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    temperature: float | None = Field(default=None, ge=0, le=2)
    top_p: float | None = Field(default=None, ge=0, le=1)
    n: int | None = Field(default=None, ge=1, le=128)
    max_tokens: int | None = Field(default=None, gt=0)
    max_completion_tokens: int | None = Field(default=None, gt=0)
    stop: str | list[str] | None = None
    presence_penalty: float | None = Field(default=None, ge=-2, le=2)
    frequency_penalty: float | None = Field(default=None, ge=-2, le=2)
    seed: int | None = None
    user: str | None = None
    extra: dict[str, Any] = Field(default_factory=dict)

    # The fields to send, worked out once: a request costs the same however many there are.
    _fields: dict[str, Any] = PrivateAttr(default_factory=dict)

    def model_post_init(self, context: Any) -> None:
        fields = {name: value for name, value in self if value is not None and name != "extra"}
        self._fields = {**fields, **self.extra}

    @field_validator("stop")
    @classmethod
    def _at_most_four(cls, value: str | list[str] | None) -> str | list[str] | None:
        if isinstance(value, list) and not 1 <= len(value) <= MAX_STOP_SEQUENCES:
            raise ValueError(f"give 1 to {MAX_STOP_SEQUENCES} stop sequences")
        return value

    @classmethod
    def checked(cls, **values: Any) -> ChatParams:
        """Build parameters, turning a range error into `InvalidParameterError`."""
        try:
            return cls(**values)
        except ValidationError as err:
            first = err.errors()[0]
            where = ".".join(str(part) for part in first["loc"])
            raise InvalidParameterError(f"invalid parameter {where}: {first['msg']}") from err

    def body(
        self, model: str, messages: list[dict[str, str]], *, stream: bool = False
    ) -> dict[str, Any]:
        """The JSON body of `POST /chat/completions`."""
        body: dict[str, Any] = {"model": model, "messages": messages, **self._fields}
        if stream:
            body["stream"] = True
            # Usage arrives in a last chunk only when asked for.
            body["stream_options"] = {"include_usage": True}
        return body
