from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from tests.llm.openai_server import OpenAIServer


@pytest.fixture
async def openai_server() -> AsyncIterator[OpenAIServer]:
    """A scripted OpenAI-compatible server; the test fails if any body broke the spec."""
    server = OpenAIServer()
    await server.start()
    try:
        yield server
    finally:
        await server.stop()
    assert server.violations == [], "bodies that do not match the OpenAI spec"
