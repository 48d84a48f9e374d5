"""Validating bodies against the official OpenAI OpenAPI spec (../shared/data/openai-openapi)."""

from __future__ import annotations

import copy
import json
import os
from functools import cache
from pathlib import Path
from typing import Any

import jsonschema
import pytest

SPEC = Path(__file__).resolve().parents[3] / "shared" / "data" / "openai-openapi" / "openapi.json"


def _nullable_to_type(node: Any) -> Any:
    """OpenAPI 3.0's `nullable: true` as JSON Schema 2020-12 understands it (see SOURCE.txt)."""
    if isinstance(node, list):
        return [_nullable_to_type(item) for item in node]
    if not isinstance(node, dict):
        return node
    node = {key: _nullable_to_type(value) for key, value in node.items()}
    if node.pop("nullable", False):
        if isinstance(node.get("type"), str):
            node["type"] = [node["type"], "null"]
            if "enum" in node:
                node["enum"] = [*node["enum"], None]
        else:
            node = {"anyOf": [node, {"type": "null"}]}
    return node


@cache
def _components() -> dict[str, Any]:
    spec = json.loads(SPEC.read_text())
    return _nullable_to_type(copy.deepcopy(spec["components"]))  # type: ignore[no-any-return]


@cache
def validator(schema_name: str) -> jsonschema.protocols.Validator:
    schema = {"$ref": f"#/components/schemas/{schema_name}", "components": _components()}
    return jsonschema.Draft202012Validator(schema)


def errors(schema_name: str, body: Any) -> list[str]:
    return [
        f"{schema_name}: {'/'.join(map(str, e.absolute_path))}: {e.message}"
        for e in validator(schema_name).iter_errors(body)
    ]


def require_spec() -> None:
    """Skip when the spec is absent (users' clones); under CI it must be there."""
    if not SPEC.is_file():
        if os.environ.get("CI"):
            pytest.fail(f"{SPEC} is missing, and CI must check conformance")
        pytest.skip(f"{SPEC} is absent: conformance is checked where ../shared is present")


def available() -> bool:
    return SPEC.is_file()
