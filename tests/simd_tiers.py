"""Running the native kernels at a chosen tier: every tier the CPU has is tested, the others are skipped
with the reason. A family's AMX kernels take over only from a crossover row count on; at_kernel_tier moves it
to one row, so that the "amx" tier runs them at every shape."""

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


@contextlib.contextmanager
def every_row_on_amx(crossover: str):
    """AMX kernels from one row on: `crossover` names the native getter of a family's AMX row count (its setter is
    set_<crossover>), e.g. "amx_min_rows" or "nm_amx_min_rows"."""
    native = _native.native()
    previous = getattr(native, crossover)()
    getattr(native, f"set_{crossover}")(1)
    try:
        yield
    finally:
        getattr(native, f"set_{crossover}")(previous)


@contextlib.contextmanager
def at_kernel_tier(tier: str, crossover: str):
    """The native kernels at `tier` ('amx': the family's AMX kernels for every row count, see every_row_on_amx);
    skips where the CPU lacks the tier. The vector tiers run with AMX off."""
    with at_tier(tier):
        if tier == "amx":
            with every_row_on_amx(crossover):
                yield tier
        else:
            yield tier
