"""Test set-up: Triton kernels run under the interpreter on machines without a GPU; the simd_tier fixture."""

import os

import pytest
import simd_tiers
import torch

if not torch.cuda.is_available():
    os.environ.setdefault("TRITON_INTERPRET", "1")


@pytest.fixture(params=simd_tiers.VECTOR_TIERS)
def simd_tier(request):
    """Each vector tier in turn (skipped where the CPU lacks it); the native kernels run at it."""
    with simd_tiers.at_tier(request.param) as tier:
        yield tier
