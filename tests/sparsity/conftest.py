"""Fixtures of the SparseLinear / sparsify tests (their helpers: sparse_layer_helpers.py)."""

from __future__ import annotations

import pytest
from sparse_layer_helpers import tiny_apt


@pytest.fixture
def make_apt():
    return tiny_apt
