from __future__ import annotations

from pathlib import Path

import pytest

from botkit.errors import ConfigError, StoreError
from botkit.stores import open_store
from tests.loopback import free_port


async def test_an_unreachable_redis_is_a_clear_error_without_the_password(tmp_path: Path) -> None:
    port = free_port()  # nothing listens there
    with pytest.raises(StoreError) as caught:
        await open_store(f"redis://:hunter2@127.0.0.1:{port}/0", home=tmp_path)
    assert f"Redis store at 127.0.0.1:{port}" in str(caught.value)
    assert "hunter2" not in str(caught.value)


async def test_an_unknown_scheme_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="unsupported store URL scheme 'mysql'"):
        await open_store("mysql://localhost/db", home=tmp_path)
