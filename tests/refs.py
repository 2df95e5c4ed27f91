"""Access to the real captured payloads in the shared `refs/` folder.

The folder lives beside the checkout (`../shared/refs`). Outside CI a test that
needs it is skipped with a reason when it is absent; under `CI=true` its absence
fails the test.
"""

from __future__ import annotations

import ast
import json
import os
from pathlib import Path
from typing import Any

import pytest

REFS = Path(__file__).resolve().parent.parent.parent / "shared" / "refs"


def ref_path(relative: str) -> Path:
    path = REFS / relative
    if not path.exists():
        message = f"shared reference payload {relative} not found beside the checkout"
        if os.environ.get("CI") == "true":
            pytest.fail(message)
        pytest.skip(message)
    return path


def ref_bytes(relative: str) -> bytes:
    return ref_path(relative).read_bytes()


def ref_json(relative: str) -> Any:
    return json.loads(ref_bytes(relative))


def ref_pydict(relative: str) -> Any:
    """Payloads saved as Python literals (bolt-python's test bodies)."""
    return ast.literal_eval(ref_path(relative).read_text())
