"""Helpers of the SparseLinear / sparsify tests: masks of each pattern, pruned linear layers, a tiny APT model,
and injected timings (the dispatcher's measure) that make the sparse path faster or slower on demand."""

from __future__ import annotations

import torch
from torch import nn

TINY_APT = dict(vocab_size=259, d_model=64, num_heads=4, num_encoder_layers=1, num_decoder_layers=1, d_ff=128,
                max_seq_len=24, bos_token_id=1, eos_token_id=2, pad_token_id=0, epsilon=0.08, dropout=0.0)

# format -> [(options, value dtypes)]: every pattern the formats take
CASES = [("bitmap", {}, (torch.float32, torch.bfloat16, torch.int8)),
         ("nm", {"n": 2, "m": 4}, (torch.float32, torch.bfloat16, torch.int8)),
         ("nm", {"n": 4, "m": 8}, (torch.float32, torch.bfloat16, torch.int8)),
         ("block", {"block": (16, 16)}, (torch.float32, torch.bfloat16)),
         ("block", {"block": (32, 32)}, (torch.float32, torch.bfloat16)),
         ("block", {"block": (1, 16)}, (torch.float32, torch.bfloat16))]
FORMAT_DTYPES = [(fmt, options, dtype) for fmt, options, dtypes in CASES for dtype in dtypes]


def case_id(fmt: str, options: dict, dtype: torch.dtype) -> str:
    detail = "".join(f"{v[0]}x{v[1]}" if isinstance(v, tuple) else str(v) for v in options.values())
    return f"{fmt}{detail}-{str(dtype).replace('torch.', '')}"


def mask_for(fmt: str, options: dict, shape, sparsity: float = 0.5, seed: int = 0) -> torch.Tensor:
    """A keep-mask [N, K] bool of the format's pattern: random unstructured, exactly n of every m, or whole blocks."""
    generator = torch.Generator().manual_seed(seed)
    rows, cols = shape
    if fmt == "nm":
        n, m = options["n"], options["m"]
        order = torch.rand(rows, cols // m, m, generator=generator).argsort(-1)
        return (order < n).reshape(rows, cols)
    if fmt == "block":
        bn, bk = options["block"]
        blocks = torch.rand(rows // bn, cols // bk, generator=generator) >= sparsity
        return blocks.repeat_interleave(bn, 0).repeat_interleave(bk, 1)
    return torch.rand(rows, cols, generator=generator) >= sparsity


def pruned_linear(shape, mask: torch.Tensor, bias: bool = True, dtype=torch.float32, seed: int = 0) -> nn.Linear:
    """nn.Linear [out, in] = shape with its weight zeroed where ``mask`` is False."""
    torch.manual_seed(seed)
    linear = nn.Linear(shape[1], shape[0], bias=bias).to(dtype)
    with torch.no_grad():
        linear.weight.mul_(mask)
    return linear


def tiny_apt(**overrides):
    from apt_fast.models.apt import APTConfig, APTModel

    torch.manual_seed(0)
    return APTModel(APTConfig(**{**TINY_APT, **overrides})).eval()


def apt_batch():
    generator = torch.Generator().manual_seed(1)
    return torch.randint(3, 259, (2, 9), generator=generator), torch.randint(3, 259, (2, 7), generator=generator)


def timing(speedup_at):
    """An injected measure: ``speedup_at(M)`` -> dense time / sparse time (dense takes 1 s)."""
    def measure(sparse_call, dense_call, x):
        return 1.0 / speedup_at(x.shape[0]), 1.0
    return measure


FASTER = timing(lambda m: 2.0)  # sparse twice as fast at every M
SLOWER = timing(lambda m: 0.5)  # sparse twice as slow at every M
