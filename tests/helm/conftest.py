"""Fixtures of the Helm chart tests (helpers live in helmchart.py)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import pytest

# The helpers module sits beside this file, whatever the import mode of the test tree.
sys.path.insert(0, str(Path(__file__).resolve().parent))

from helmchart import CASE_IDS, CASES


@pytest.fixture(params=CASES, ids=CASE_IDS)
def case(request: pytest.FixtureRequest) -> tuple[str, dict[str, Any]]:
    return request.param  # type: ignore[no-any-return]
