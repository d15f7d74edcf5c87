"""The Triton flash-attention kernels (apt_fast.kernels.flash_attention) against the fp64 reference.

Without CUDA the kernels run under the Triton interpreter on CPU tensors (TRITON_INTERPRET=1 must be set before
the kernel module is imported, hence the order below), so shapes are small and odd and the tiles are forced to
16 x 16 so that several query and key tiles run. Every case runs forward and backward with a random upstream
gradient: bias broadcasts (with their gradient), causal and bool masks with fully masked rows, dropout (the
reference's exact draw), fp16 and bf16, a float32 bias with bf16 q, non-contiguous inputs, the backend's entry
points, and (slow) a compile of every kernel for sm_90, fp32 and bf16.

bf16 under the interpreter (triton 3.9; test_interpreter_bf16_limits pins it down): loads, stores and fp32 <->
bf16 conversions work, the latter truncating; tl.dot of bf16 operands, bf16 arithmetic and reductions multiply
or add the uint16 storage, and a bf16 atomic_add raises. The kernels' dots therefore take fp32 operands widened
from bf16 there (kernels/flash_attention.py: dot_dtype), which is the bf16 dot with fp32 accumulation up to
the order of the sums; the rest of the bf16 path (bf16 loads of q/k/v/dO/bias, P and dS rounded to bf16, fp32
statistics, bf16 stores, fp32 d(bias) atomics) is the GPU's. Left for a GPU: the bf16 tensor-core dots
themselves (tl.dot on bf16 operands), round-to-nearest-even stores (the 2x rule instead of triton_slack's 5x),
and the 64 x 64 tiles of launch_config (the tests force 16 x 16). The sm_90 compile checks that those kernels
compile, not their numbers.
"""

import os
import subprocess
import sys

import pytest
import torch

if not torch.cuda.is_available():
    os.environ.setdefault("TRITON_INTERPRET", "1")

pytest.importorskip("triton")

import triton
import triton.language as tl
from attention_helpers import assert_within_reference_error, randn, triton_slack

from apt_fast.backends.triton import flash_attention as triton_attention
from apt_fast.kernels.flash_attention import flash_attention_bwd_triton, flash_attention_fwd_triton
from apt_fast.reference.flash_attention import flash_attention_bwd_ref, flash_attention_fwd_ref

DEVICE = "cuda" if torch.cuda.is_available() else "cpu"
BLOCKS = dict(block_m=16, block_n=16)
NAMES = ("out", "dq", "dk", "dv", "dbias")


def _inputs(shape, bias_shape, mask_shape, dtype, seed=0):
    """q, k, v, bias (or None), mask (or None; True = attend, query row 1 fully masked), grad_out."""
    b, h, t, s, d = shape
    q, k, v = (randn(b, h, n, d, seed=seed + i, dtype=dtype).to(DEVICE) for i, n in enumerate((t, s, s)))
    bias = None if bias_shape is None else randn(*bias_shape, seed=seed + 7, scale=2.0, dtype=dtype).to(DEVICE)
    mask = None
    if mask_shape is not None:
        mask = torch.rand(mask_shape, generator=torch.Generator().manual_seed(seed)) > 0.3
        mask[..., 1, :] = False
        mask = mask.to(DEVICE)
    return q, k, v, bias, mask, randn(b, h, t, d, seed=seed + 9, dtype=dtype).to(DEVICE)


def _reference(q, k, v, bias, mask, grad_out, causal, scale, dropout_p, seed, dtype):
    """(out, dq, dk, dv, dbias or None) and lse of the reference with every floating input cast to dtype."""
    cast = [x.cpu().to(dtype) if x is not None else None for x in (q, k, v, bias, grad_out)]
    q, k, v, bias, grad_out = cast
    mask = mask.cpu() if mask is not None else None
    out, lse = flash_attention_fwd_ref(q, k, v, bias, mask, causal, scale, dropout_p, seed)
    grads = flash_attention_bwd_ref(grad_out, q, k, v, bias, mask, causal, scale, dropout_p, seed)
    return (out, *grads), lse


def compare(shape, bias_shape=None, mask_shape=None, causal=False, dropout_p=0.0, dtype=torch.float32, seed=0,
            layout=lambda x: x):
    """Kernel vs fp64 reference for out, lse and every gradient, by flash-attention's rule (the kernel's error is
    within 2x the same-precision reference's, plus 1e-6; 5x for bf16 under the interpreter: triton_slack).
    `layout` re-lays q, k, v, bias and grad_out out (same values) before the kernel sees them. Returns the kernel's
    errors."""
    q, k, v, bias, mask, grad_out = _inputs(shape, bias_shape, mask_shape, dtype, seed)
    scale = shape[-1] ** -0.5
    args = [layout(x) if x is not None else None for x in (q, k, v, bias, grad_out)]
    out, lse = flash_attention_fwd_triton(*args[:4], mask, causal, scale, dropout_p, 1234, **BLOCKS)
    grads = flash_attention_bwd_triton(args[4], *args[:4], mask, out, lse, causal, scale, dropout_p, 1234, True,
                                       **BLOCKS)
    ref, _ = _reference(q, k, v, bias, mask, grad_out, causal, scale, dropout_p, 1234, dtype)
    ref64, lse64 = _reference(q, k, v, bias, mask, grad_out, causal, scale, dropout_p, 1234, torch.float64)
    _, lse32 = _reference(q, k, v, bias, mask, grad_out, causal, scale, dropout_p, 1234, torch.float32)

    assert lse.dtype == torch.float32 and lse.shape == lse64.shape
    lse, empty = lse.cpu(), torch.isneginf(lse64)
    assert torch.equal(torch.isneginf(lse), empty)  # lse is float32 whatever the inputs: the float32 reference's
    assert_within_reference_error("lse", lse[~empty], lse32[~empty], lse64[~empty])
    errors = {}
    for name, got, want, want64 in zip(NAMES, (out, *grads), ref, ref64):
        if want64 is None:  # no bias: an empty d(bias)
            assert got.numel() == 0
            continue
        assert got.shape == want64.shape and got.dtype == dtype and got.is_contiguous(), name
        errors[name] = assert_within_reference_error(name, got.cpu(), want, want64, slack=triton_slack(dtype))
    return errors


@pytest.mark.parametrize("causal", [False, True])
@pytest.mark.parametrize("shape", [(1, 2, 33, 20, 12), (2, 1, 5, 7, 8), (1, 1, 17, 40, 16)], ids=str)
def test_shapes_full_bias(shape, causal):
    b, h, t, s, _ = shape
    compare(shape, bias_shape=(b, h, t, s), causal=causal)


@pytest.mark.parametrize("bias_shape", [None, (2, 1, 23), (2, 1, 1, 23), (23,), (20, 1), (1,)], ids=str)
def test_bias_broadcasts_sum_their_gradient(bias_shape):
    compare((2, 2, 20, 23, 8), bias_shape=bias_shape)


@pytest.mark.parametrize("mask_shape,causal", [((2, 1, 20, 23), False), ((20, 23), True), ((2, 2, 20, 23), True)],
                         ids=str)
def test_bool_mask_with_fully_masked_rows(mask_shape, causal):
    compare((2, 2, 20, 23, 8), bias_shape=(2, 20, 23), mask_shape=mask_shape, causal=causal)


@pytest.mark.parametrize("bias_shape", [None, (1, 2, 1, 23)], ids=str)
def test_dropout_same_draw_as_reference(bias_shape):
    compare((1, 2, 20, 23, 8), bias_shape=bias_shape, mask_shape=(20, 23), causal=True, dropout_p=0.3)


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16], ids=str)
def test_half_precision(dtype):
    compare((1, 2, 20, 23, 16), bias_shape=(2, 20, 23), causal=True, dtype=dtype)


@pytest.mark.parametrize("bias_shape, mask_shape, dropout_p", [
    ((2, 1, 23), (20, 23), 0.0), ((1,), None, 0.2), (None, (2, 1, 20, 23), 0.0), ((2, 2, 20, 23), None, 0.0),
], ids=str)
def test_bf16_bias_broadcasts_masks_dropout(bias_shape, mask_shape, dropout_p):
    compare((2, 2, 20, 23, 8), bias_shape=bias_shape, mask_shape=mask_shape, causal=True, dropout_p=dropout_p,
            dtype=torch.bfloat16)


def test_float32_bias_with_bf16_q():
    """Autocast's case: the bias is read in fp32 and its gradient stays float32; out, dq, dk, dv bf16, against the
    reference run in bf16 (the bias rounded to bf16)."""
    q, k, v, _, _, grad_out = _inputs((1, 2, 20, 23, 16), None, None, torch.bfloat16)
    bias = randn(2, 20, 23, seed=7, scale=2.0).to(DEVICE)  # float32
    scale = 16**-0.5
    out, lse = flash_attention_fwd_triton(q, k, v, bias, None, False, scale, 0.0, 0, **BLOCKS)
    grads = flash_attention_bwd_triton(grad_out, q, k, v, bias, None, out, lse, False, scale, 0.0, 0, True, **BLOCKS)
    assert [x.dtype for x in (out, *grads)] == [torch.bfloat16] * 4 + [torch.float32]
    ref, _ = _reference(q, k, v, bias, None, grad_out, False, scale, 0.0, 0, torch.bfloat16)
    ref64, _ = _reference(q, k, v, bias, None, grad_out, False, scale, 0.0, 0, torch.float64)
    for name, got, want, want64 in zip(NAMES, (out, *grads), ref, ref64):
        assert_within_reference_error(name, got.cpu(), want, want64, slack=triton_slack(torch.bfloat16))


def test_non_contiguous_inputs():
    # q, k, v and grad_out laid out as [B, L, H, d], the bias as a strided slice of a wider tensor.
    def layout(x):
        if x.dim() == 4:
            return x.transpose(1, 2).contiguous().transpose(1, 2)
        return torch.stack([x, x], dim=-1)[..., 0]
    for dtype in (torch.float32, torch.bfloat16):
        errors = compare((1, 2, 20, 23, 12), bias_shape=(2, 20, 23), layout=layout, dtype=dtype)
        assert set(errors) == set(NAMES)


def test_backend_entry_points_check_and_fill_the_contract():
    q, k, v, bias, _, grad_out = _inputs((1, 2, 5, 7, 8), (2, 5, 7), None, torch.float32)
    with pytest.raises(ValueError, match="mask"):
        triton_attention.flash_attention_fwd(q, k, v, bias, torch.ones(5, 7, device=DEVICE), False, 0.3, 0.0, 0)
    out, lse = triton_attention.flash_attention_fwd(q, k, v, bias, None, False, 0.3, 0.0, 0)
    dq, dk, dv, dbias = triton_attention.flash_attention_bwd(grad_out, q, k, v, bias, None, out, lse, False, 0.3,
                                                             0.0, 0, False)
    assert (out.shape, lse.shape, lse.dtype) == ((1, 2, 5, 8), (1, 2, 5), torch.float32)
    assert (dq.shape, dk.shape, dv.shape, dbias.numel()) == (q.shape, k.shape, v.shape, 0)


@triton.jit
def _bf16_probe_kernel(a, b, dot, widened_dot, product, converted, N: tl.constexpr):
    rows = tl.arange(0, N)
    tile = rows[:, None] * N + rows[None, :]  # [N, N]
    x, y = tl.load(a + tile), tl.load(b + tile)  # bf16
    tl.store(dot + tile, tl.dot(x, y))
    tl.store(widened_dot + tile, tl.dot(x.to(tl.float32), y.to(tl.float32), input_precision="ieee"))
    tl.store(product + tile, x * y)
    tl.store(converted + tile, (x.to(tl.float32) * 3.0).to(tl.bfloat16))


@pytest.mark.skipif(DEVICE != "cpu", reason="about the Triton interpreter")
def test_interpreter_bf16_limits(monkeypatch):
    """What the interpreter does with bf16, which dot_dtype works around (see the module docstring). If this test
    fails, the interpreter has learnt bf16 arithmetic and dot_dtype's exception can go."""
    from apt_fast.kernels.flash_attention import dot_dtype

    gen = torch.Generator().manual_seed(0)
    a, b = (torch.randn(16, 16, generator=gen).bfloat16() for _ in range(2))
    dot, widened = torch.zeros(16, 16), torch.zeros(16, 16)
    product, converted = torch.zeros(16, 16, dtype=torch.bfloat16), torch.zeros(16, 16, dtype=torch.bfloat16)
    _bf16_probe_kernel[(1,)](a, b, dot, widened, product, converted, N=16)
    exact = a.double() @ b.double()
    assert (dot.double() - exact).abs().max() > 1e6  # the uint16 storage multiplied
    assert not torch.allclose(product.double(), a.double() * b.double(), rtol=0.1, atol=0.1)
    assert (widened.double() - exact).abs().max() < 1e-4  # exact products, fp32 sums
    want = a.float() * 3.0
    assert not torch.equal(converted, want.bfloat16())  # not round-to-nearest-even ...
    assert torch.all(converted.float().abs() <= want.abs())  # ... but truncation
    assert dot_dtype(torch.bfloat16) == tl.float32
    monkeypatch.setattr(triton.knobs.runtime, "interpret", False)
    assert [dot_dtype(d) for d in (torch.bfloat16, torch.float16, torch.float32)] == [tl.bfloat16, tl.float16,
                                                                                      tl.float32]


COMPILE_CHECK = r"""
import torch, triton
from triton.backends.compiler import GPUTarget
from triton.compiler import ASTSource, make_backend
from triton.runtime.jit import create_function_from_signature
from apt_fast.kernels import apt_attention, flash_attention

TARGET = GPUTarget("cuda", 90, 32)
BACKEND = make_backend(TARGET)


def compile_instead_of_launch(kernel):
    # What JITFunction.run does up to the compile, with the sm_90 target in place of the active driver's.
    def run(*args, grid, warmup, **kwargs):
        bound, specialization, options = create_function_from_signature(kernel.signature, kernel.params,
                                                                        BACKEND)(*args, **kwargs)
        options, signature, constexprs, attrs = kernel._pack_args(BACKEND, kwargs, bound, specialization, options)
        compiled = triton.compile(ASTSource(kernel, signature, constexprs, attrs), target=TARGET,
                                  options=options.__dict__)
        print(kernel.__name__, signature["q"] if "q" in signature else "", len(compiled.asm["cubin"]),
              compiled.metadata.shared)
    kernel.run = run


for module in (flash_attention, apt_attention):
    for name in dir(module):
        if name.endswith("_kernel"):
            compile_instead_of_launch(getattr(module, name))
b, h, t, s, d = 2, 4, 128, 96, 64
for dtype in (torch.float32, torch.bfloat16):
    q, k, v, out = (torch.randn(b, h, n, d, dtype=dtype) for n in (t, s, s, t))
    lse, f = torch.zeros(b, h, t), torch.randn(b, t, s, dtype=dtype)
    bias, mask, key_pad = torch.randn(h, 1, s, dtype=dtype), torch.rand(t, s) > 0.2, torch.rand(b, s) > 0.5
    flash_attention.flash_attention_fwd_triton(q, k, v, bias, mask, True, 0.125, 0.1, 7)
    flash_attention.flash_attention_bwd_triton(out, q, k, v, bias, mask, out, lse, True, 0.125, 0.1, 7, True)
    apt_attention.apt_head_mean_fwd_triton(q, k, f[:, None], key_pad)
    apt_attention.apt_head_mean_bwd_triton(f, q, k, f[:, None], key_pad)
    apt_attention.apt_attention_fwd_triton(q, k, v, f, f, f[:, None], key_pad, 0.1, 7)
    apt_attention.apt_attention_bwd_triton(out, q, k, v, f, f, f[:, None], key_pad, out, lse, 0.1, 7)
"""


@pytest.mark.slow
def test_every_attention_kernel_compiles_for_sm90():
    """Compiles (to a cubin) every attention kernel as its launcher would launch it on an sm_90 GPU, fp32 and bf16,
    with every optional input: no GPU needed, only triton's bundled ptxas."""
    env = {key: value for key, value in os.environ.items() if key != "TRITON_INTERPRET"}
    env["TRITON_DEFAULT_FP_FUSION"] = "1"
    result = subprocess.run([sys.executable, "-c", COMPILE_CHECK], env=env, capture_output=True, text=True,
                            timeout=1200)
    assert result.returncode == 0, result.stderr[-3000:]
    compiled = result.stdout.splitlines()  # kernel, q's type, cubin bytes, shared memory: one line per compile
    assert len(compiled) == 22, f"11 kernel launches x 2 dtypes, got:\n{result.stdout}"
