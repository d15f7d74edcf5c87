"""Per-layer accuracy of a quantized linear layer: SQNR (signal to quantization noise, dB) of its output against
the fp32 layer's, on synthetic activations of two kinds:
  gaussian      N(0, 1) per input;
  heavy-tailed  Student-t with 3 degrees of freedom, and a few outlier input channels scaled by 50 (the pattern
                that makes per-tensor activation quantization fail in LLMs).
"""

from __future__ import annotations

import math
from typing import Dict

import torch
from torch import Tensor, nn

ROWS = 256
OUTLIER_CHANNELS = 4
OUTLIER_SCALE = 50.0


def sqnr_db(reference: Tensor, approximation: Tensor) -> float:
    noise = (reference.double() - approximation.double()).pow(2).sum().item()
    signal = reference.double().pow(2).sum().item()
    return math.inf if noise == 0 else 10.0 * math.log10(signal / noise)


def activations(kind: str, rows: int, features: int, seed: int = 0) -> Tensor:  # [rows, features] fp32
    generator = torch.Generator().manual_seed(seed)
    if kind == "gaussian":
        return torch.randn(rows, features, generator=generator)
    normal = torch.randn(rows, features, generator=generator)
    chi2 = torch.randn(rows, features, 3, generator=generator).pow(2).sum(-1)
    x = normal / torch.sqrt(chi2 / 3.0)  # Student-t, 3 degrees of freedom
    outliers = torch.randperm(features, generator=generator)[:OUTLIER_CHANNELS]
    x[:, outliers] *= OUTLIER_SCALE
    return x


def layer_sqnr(original: nn.Linear, quantized: nn.Module) -> Dict[str, float]:
    """{'gaussian': dB, 'heavy_tailed': dB} of quantized(x) against original(x), fp32, on the CPU."""
    weight = original.weight.detach().float().cpu()
    bias = original.bias.detach().float().cpu() if original.bias is not None else None
    device = next(quantized.buffers()).device
    result = {}
    with torch.no_grad():
        for kind in ("gaussian", "heavy_tailed"):
            x = activations(kind, ROWS, original.in_features)
            exact = torch.nn.functional.linear(x, weight, bias)
            result[kind] = sqnr_db(exact, quantized(x.to(device)).float().cpu())
    return result
