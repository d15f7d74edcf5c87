"""Upstream's DBC-DAC gradient hooks (APT_SPEC.md §4).

Upstream registers one hook per parameter that rewrites its gradient before accumulation:

1. always ``nan_to_num(g, nan=0, posinf=1, neginf=-1)`` — deterministic; apt_fast keeps it behind
   ``config.use_dbc_dac``. Note that it hides fp16 overflow from a GradScaler (inf becomes ±1);
2. for matrices with at least 150,000 elements, with probability 0.05 per backward, a random
   "low-rank projection" of the row-normalised gradient. **This branch is an upstream defect**: it
   multiplies each retained component by its own singular value, so the result is not an
   approximation of the gradient (norm ratio 83-371x, cosine 0.05-0.20 measured), and for
   min(m, n) < 20 it zeroes the gradient. It draws from Python's ``random`` and the global torch RNG.
   apt_fast runs it only when ``config.dbc_stochastic_low_rank`` is set explicitly.
"""

from __future__ import annotations

import random
from collections.abc import Iterable
from functools import partial

import torch
from torch import Tensor, nn

LOW_RANK_MIN_NUMEL = 150_000
LOW_RANK_PROBABILITY = 0.05
_POWER_ITERATION_MAX_RANK = 50
_POWER_ITERATION_STEPS = 20


def sanitize_gradient(grad: Tensor) -> Tensor:
    """The deterministic part of the hook: NaN -> 0, +inf -> +1, -inf -> -1 (a new tensor)."""
    return torch.nan_to_num(grad, nan=0.0, posinf=1.0, neginf=-1.0)


def _orthonormal(rows: int, cols: int, like: Tensor) -> Tensor:  # [rows, cols]
    return torch.linalg.qr(torch.randn(rows, cols, dtype=like.dtype, device=like.device)).Q


def _leading_eigenpairs(gram: Tensor) -> tuple[Tensor, Tensor]:  # λ [k], E [r0, k]
    """Upstream's eigen-solver on the r0 x r0 Gram matrix: power iteration up to rank 50, else eigh."""
    r0 = gram.shape[0]
    if r0 <= _POWER_ITERATION_MAX_RANK:
        basis = _orthonormal(r0, min(r0, int(0.8 * r0)), gram)
        for _ in range(_POWER_ITERATION_STEPS):
            new_basis = torch.linalg.qr(gram @ basis).Q
            if torch.allclose(basis, new_basis, atol=1e-5):
                break  # upstream keeps the previous basis
            basis = new_basis
        return torch.diagonal(basis.T @ gram @ basis), basis
    eigvals, eigvecs = torch.linalg.eigh(gram)
    eigvals, eigvecs = eigvals.flip(0), eigvecs.flip(1)
    cumulative = torch.cumsum(eigvals, 0)
    k = min(r0, int(torch.searchsorted(cumulative, 0.95 * eigvals.sum())) + 1)
    return eigvals[:k], eigvecs[:, :k]


def _randomized_low_rank(a: Tensor, rank_ratio: float) -> Tensor:  # [m, n] -> [m, n]
    """Upstream's LR(A): a randomized range finder whose output is scaled by diag(sqrt(λ)) (§4 step 4)."""
    m, n = a.shape
    r0 = max(1, int(rank_ratio * min(m, n)))
    tall = m >= n
    omega = _orthonormal(n if tall else m, r0, a)  # [n|m, r0]
    y = a @ omega if tall else a.T @ omega  # [m|n, r0]
    eigvals, eigvecs = _leading_eigenpairs(y.T @ y)
    scale = torch.sqrt(eigvals.clamp(min=0.0))
    left, right = (y @ eigvecs, omega @ eigvecs) if tall else (omega @ eigvecs, y @ eigvecs)
    return (left * scale) @ right.T


def _dbc_low_rank(grad: Tensor, rank_ratio: float, threshold: float) -> Tensor:
    """Row-normalise by the signed row sums, project with LR, scale back (§4 step 3)."""
    w = grad.reshape(grad.shape[0], -1).float()  # [dim0, rest]
    row_sums = w.sum(dim=1, keepdim=True)
    sign = torch.where(row_sums >= 0, 1.0, -1.0)
    d = sign * row_sums.abs().clamp(min=threshold)  # [dim0, 1]
    try:
        projected = _randomized_low_rank(w / d, rank_ratio)
    except RuntimeError as err:  # upstream prints the error and keeps the input
        print(f"DBC-DAC low-rank projection failed, gradient left as is: {err}")
        projected = w / d
    return (projected * d).reshape(grad.shape).to(grad.dtype)


def dbc_dac_hook(grad: Tensor, *, stochastic: bool, rank_ratio: float, threshold: float) -> Tensor:
    """The per-parameter gradient hook; ``stochastic`` enables upstream's defective low-rank branch."""
    grad = sanitize_gradient(grad)
    if not stochastic or grad.numel() < LOW_RANK_MIN_NUMEL or grad.dim() < 2:
        return grad
    if random.random() > LOW_RANK_PROBABILITY:
        return grad
    return _dbc_low_rank(grad, rank_ratio, threshold)


def add_gradient_hooks(parameters: Iterable[nn.Parameter], config) -> int:
    """Register the DBC-DAC hook on every trainable parameter given; returns the count.

    Upstream hooks the model's parameters (each tied tensor once), ``sr_layernorm`` included although
    its hook never fires (it gets no gradient), and not APTLargeModel's ``taylor_*``. Idempotent: a
    parameter that already has the hook is skipped, so it can run again after a loader replaced some
    Parameter objects.
    """
    hook = partial(
        dbc_dac_hook,
        stochastic=config.dbc_stochastic_low_rank,
        rank_ratio=config.rank_ratio_proj,
        threshold=config.dbc_threshold,
    )
    params = [p for p in parameters if p.requires_grad]
    for param in params:
        if not getattr(param, "_apt_dbc_dac_hook", False):
            param.register_hook(hook)
            param._apt_dbc_dac_hook = True
    return len(params)
