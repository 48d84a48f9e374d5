"""Request and response bodies against the official OpenAI OpenAPI spec.

Every request the suite's OpenAI test server receives, and every completion it
returns, is validated as it happens (tests/llm/openai_server.py); these tests
check the validator itself and the bodies botkit builds for every parameter.
"""

from __future__ import annotations

import pytest

from botkit.llm.params import ChatParams
from tests.llm import openai_spec

MESSAGES = [
    {"role": "system", "content": "s"},
    {"role": "user", "content": "u"},
    {"role": "assistant", "content": "a"},
    {"role": "user", "content": "u2"},
]


@pytest.fixture(autouse=True)
def spec() -> None:
    openai_spec.require_spec()


@pytest.mark.parametrize("stream", [False, True])
def test_bodies_with_every_parameter_match_the_spec(stream: bool) -> None:
    params = ChatParams(
        temperature=0.7,
        top_p=0.5,
        n=2,
        max_tokens=100,
        stop=["a", "b", "c", "d"],
        presence_penalty=-2,
        frequency_penalty=2,
        seed=1,
        user="pseudonym",
        extra={"logit_bias": {"50256": -100}, "reasoning_effort": "low"},
    )
    assert (
        openai_spec.errors("CreateChatCompletionRequest", params.body("m", MESSAGES, stream=stream))
        == []
    )
    only_completion_tokens = ChatParams(max_completion_tokens=10, stop="END")
    assert (
        openai_spec.errors(
            "CreateChatCompletionRequest", only_completion_tokens.body("m", MESSAGES)
        )
        == []
    )


def test_the_validator_catches_what_the_api_would_reject() -> None:
    bad = {"model": "m", "messages": MESSAGES, "temperature": 3, "stop": ["1", "2", "3", "4", "5"]}
    problems = openai_spec.errors("CreateChatCompletionRequest", bad)
    assert any("temperature" in p for p in problems)
    assert any("stop" in p for p in problems)
    assert openai_spec.errors("CreateChatCompletionRequest", {"model": "m", "messages": []})


def test_botkit_refuses_out_of_range_values_before_sending() -> None:
    from botkit.errors import InvalidParameterError

    for values in (
        {"temperature": 2.1},
        {"top_p": -0.1},
        {"stop": ["1"] * 5},
        {"n": 0},
        {"presence_penalty": 3},
        {"max_tokens": 0},
    ):
        with pytest.raises(InvalidParameterError):
            ChatParams.checked(**values)
