"""The sr-MLP of APT attention (spec T4) as the piecewise-linear function of one scalar that it is.

    a(X) = Σ_k w2_k · relu(clamp(w1_k X + b1_k, -5, 5)) + b2 = Σ_k w2_k · clamp(w1_k X + b1_k, 0, 5) + b2

Each hidden unit bends where w1_k X + b1_k crosses 0 or 5, so a(X) is linear between at most 2·Hd sorted
knots. Per element the forward is one segment lookup and one multiply-add instead of an [Hd]-wide
hidden layer (the conv reference materialises [B, Hd, T, S]). The backward needs, per segment σ, only
G0_σ = Σ g and G1_σ = Σ g·X over the elements in σ: with the unit states of σ (active: 0 < z ≤ 5, the
gradient convention of relu(clamp(z, -5, 5)); saturated: z > 5),
    dw2_k = Σ_σ active·(w1_k G1_σ + b1_k G0_σ) + 5·saturated·G0_σ,
    dw1_k = w2_k Σ_σ active·G1_σ,   db1_k = w2_k Σ_σ active·G0_σ,   db2 = Σ g,   dX = g · slope_σ.
"""

from __future__ import annotations

from typing import Tuple

import torch
from torch import Tensor

_SENTINEL = 1e30


def _segments(w1: Tensor, b1: Tensor) -> Tuple[Tensor, Tensor]:
    """Sorted knots [2 Hd] and one representative X strictly inside each of the 2 Hd + 1 segments (fp64).

    A unit with w1_k = 0 never bends: its two knots sit at a far sentinel (1e30, |X| <= 6.4), so every
    shape stays static (torch.compile) and the sentinel segments never hold an element.
    """
    w1, b1 = w1.double(), b1.double()
    bending = w1 != 0
    safe_w1 = torch.where(bending, w1, torch.ones_like(w1))
    far = torch.full_like(w1, _SENTINEL)
    knots = torch.cat((torch.where(bending, (0.0 - b1) / safe_w1, far),
                       torch.where(bending, (5.0 - b1) / safe_w1, far))).sort().values
    inner = (knots[1:] + knots[:-1]) * 0.5
    return knots, torch.cat((knots[:1] - 1.0, inner, knots[-1:] + 1.0))


def _unit_states(reps: Tensor, w1: Tensor, b1: Tensor) -> Tuple[Tensor, Tensor]:
    """active, saturated [K + 1, Hd] (fp64 0/1) of each hidden unit in each segment."""
    z = reps[:, None] * w1.double()[None, :] + b1.double()[None, :]
    return ((z > 0) & (z <= 5)).double(), (z > 5).double()


class PiecewiseLinearSrMlp(torch.autograd.Function):
    """a(X) before the outer clamp, for X of any shape; gradients for X, w1, b1, w2, b2 ([Hd], [Hd], [Hd], [1]).

    The weights must be finite (a non-finite sr weight is upstream's T16 "abnormal" case, not handled here)."""

    @staticmethod
    def forward(ctx, x: Tensor, w1: Tensor, b1: Tensor, w2: Tensor, b2: Tensor) -> Tensor:
        knots, reps = _segments(w1, b1)
        active, saturated = _unit_states(reps, w1, b1)
        w2d = w2.double()
        slope = active @ (w1.double() * w2d)  # [K + 1]
        intercept = active @ (b1.double() * w2d) + 5.0 * (saturated @ w2d) + b2.double()
        segment = torch.searchsorted(knots.to(x.dtype), x.detach(), right=True)  # [*x.shape] in [0, K]
        ctx.save_for_backward(x, w1, b1, w2, segment, active, saturated, slope)
        return slope.to(x.dtype)[segment] * x + intercept.to(x.dtype)[segment]

    @staticmethod
    def backward(ctx, grad: Tensor):
        x, w1, b1, w2, segment, active, saturated, slope = ctx.saved_tensors
        flat = segment.reshape(-1)
        g = grad.reshape(-1).double()
        g0 = torch.zeros(slope.shape, dtype=torch.float64, device=x.device).index_add_(0, flat, g)  # [K + 1]
        g1 = torch.zeros_like(g0).index_add_(0, flat, g * x.reshape(-1).double())
        active_g0, active_g1 = g0 @ active, g1 @ active  # [Hd]
        dw2 = w1.double() * active_g1 + b1.double() * active_g0 + 5.0 * (g0 @ saturated)
        dw1, db1 = w2.double() * active_g1, w2.double() * active_g0
        dx = grad * slope.to(grad.dtype)[segment]
        return dx, dw1.to(w1.dtype), db1.to(b1.dtype), dw2.to(w2.dtype), g.sum().reshape(1).to(w2.dtype)
