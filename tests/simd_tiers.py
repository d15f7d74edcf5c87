"""Running the native kernels at a chosen tier: every tier the CPU has is tested, the others are skipped
with the reason."""

from __future__ import annotations

import contextlib

import pytest

from apt_fast import _native

# The vector tiers every kernel is compiled for; "amx" adds matrix tiles, only where a family has AMX code.
VECTOR_TIERS = ("scalar", "avx2", "avx512")
ALL_TIERS = VECTOR_TIERS + ("amx",)


@contextlib.contextmanager
def at_tier(tier: str):
    """Run the native kernels at `tier`; skip the test when this CPU (or its OS) lacks it."""
    native = _native.native()
    best = native.detected_simd_level()
    if ALL_TIERS.index(tier) > ALL_TIERS.index(best):
        pytest.skip(f"this CPU lacks the {tier} tier (best here: {best})")
    previous = native.simd_level()
    native.set_simd_level(tier)
    try:
        yield tier
    finally:
        native.set_simd_level(previous)
