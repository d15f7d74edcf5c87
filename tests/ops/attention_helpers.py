"""Shared helpers of the attention tests: inputs and fp64 comparisons with flash-attention's tolerance rule."""

from __future__ import annotations

import torch


def randn(*shape, seed: int, scale: float = 1.0, dtype=torch.float32) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    return (torch.randn(*shape, generator=generator, dtype=torch.float64) * scale).to(dtype)


def max_err(actual: torch.Tensor, expected: torch.Tensor) -> float:
    return (actual.double() - expected.double()).abs().max().item() if actual.numel() else 0.0


def assert_within_reference_error(name: str, actual, reference_same_precision, reference_fp64, slack: float = 2.0,
                                  atol: float = 1e-6) -> float:
    """flash-attention's rule: the kernel's error vs fp64 is within `slack` x the error of the same-precision
    reference vs fp64 (plus a small absolute floor). Returns the kernel's error."""
    err = max_err(actual, reference_fp64)
    ref_err = max_err(reference_same_precision, reference_fp64)
    assert err <= slack * ref_err + atol, (f"{name}: kernel error {err:.3e} > {slack} x the same-precision "
                                           f"reference's {ref_err:.3e} + {atol:.0e}")
    return err


def triton_slack(dtype: torch.dtype) -> float:
    """The slack of flash-attention's rule for a Triton kernel's results: 2, except for bf16 under the interpreter.

    The interpreter converts fp32 to bf16 by truncation (with or without fp_downcast_rounding="rtne"; a GPU rounds
    to nearest even), and the kernels round P and dS to bf16 before their dots and store bf16 results: a biased
    rounding, one ulp instead of half of one. Measured under the interpreter over APT's five mask kinds and three
    score scales: up to 4.1x the bf16 reference's error (dK; out 1.4x, M 2.2x), hence 5. On a GPU: 2."""
    import triton

    return 5.0 if dtype == torch.bfloat16 and triton.knobs.runtime.interpret else 2.0


def assert_bf16_accuracy(name: str, got: torch.Tensor, ref_bf16: torch.Tensor, ref64: torch.Tensor) -> None:
    """A bf16 kernel's rule: its error vs fp64 is within 2x the same reference run in bf16, plus half a bf16 ulp of
    the largest result (rounding the output to bf16 alone costs that much)."""
    floor = 0.5 * torch.finfo(torch.bfloat16).eps * ref64.abs().max().item() if ref64.numel() else 0.0
    err, ref_err = max_err(got, ref64), max_err(ref_bf16, ref64)
    print(f"{name}: kernel {err:.3e}, bf16 reference {ref_err:.3e}, floor {floor:.1e}")
    assert err <= 2.0 * ref_err + floor, f"{name}: error {err:.3e} > 2 x {ref_err:.3e} + {floor:.1e}"


def record_fp32_copies_of_heads(monkeypatch, heads: int, head_dim: int) -> list:
    """Makes the CPU backend's fp32 row helper fail for any tensor, and records the shape of every bf16 [B, H, L, d]
    tensor (heads, head_dim as given) that .float() or .to() turns into float32; returns the list it fills."""
    from apt_fast.backends.cpu import views

    converted = []

    def refuse(x):
        raise AssertionError(f"as_fp32_rows on a {x.dtype} tensor of shape {tuple(x.shape)}")

    def spy(method):
        def wrapper(self, *args, **kwargs):
            result = method(self, *args, **kwargs)
            if self.dtype == torch.bfloat16 and result.dtype == torch.float32 and self.dim() == 4 and \
                    self.shape[1] == heads and self.shape[-1] == head_dim:
                converted.append(tuple(self.shape))
            return result
        return wrapper

    monkeypatch.setattr(views, "as_fp32_rows", refuse)
    monkeypatch.setattr(torch.Tensor, "float", spy(torch.Tensor.float))
    monkeypatch.setattr(torch.Tensor, "to", spy(torch.Tensor.to))
    return converted
