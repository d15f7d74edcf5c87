"""Shared fixtures for the APT model tests: the golden data copied from upstream runs, tiny configs."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

GOLDEN_INDEX = Path(__file__).resolve().parents[1] / "data" / "golden" / "apt" / "index.json"


@pytest.fixture
def tiny_config():
    from apt_fast.models.apt import APTConfig

    # The golden "tiny" case: vocab 100, D 32, 2 heads, 1+1 layers, d_ff 64; bos 1 / eos 2 / pad 0.
    return APTConfig(**json.loads(GOLDEN_INDEX.read_text())["tiny"]["config"])
