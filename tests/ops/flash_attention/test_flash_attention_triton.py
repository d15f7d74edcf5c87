"""The Triton flash-attention kernels (apt_fast.kernels.flash_attention) against the fp64 reference.

Without CUDA the kernels run under the Triton interpreter on CPU tensors (TRITON_INTERPRET=1 must be set before
the kernel module is imported, hence the order below), so shapes are small and odd and the tiles are forced to
16 x 16 so that several query and key tiles run. Every case runs forward and backward with a random upstream
gradient: bias broadcasts (with their gradient), causal and bool masks with fully masked rows, dropout (the
reference's exact draw), fp16 (bf16 on a GPU only), non-contiguous inputs, the backend's entry points, and
(slow) a compile of every kernel for sm_90.
"""

import os
import subprocess
import sys

import pytest
import torch

if not torch.cuda.is_available():
    os.environ.setdefault("TRITON_INTERPRET", "1")

pytest.importorskip("triton")

from attention_helpers import assert_within_reference_error, randn

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
    """Kernel vs fp64 reference for out, lse and every gradient, by flash-attention's 2x rule (the kernel's
    error is within 2x the same-precision reference's, plus 1e-6). `layout` re-lays q, k, v, bias and grad_out
    out (same values) before the kernel sees them. Returns the kernel's errors."""
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
        errors[name] = assert_within_reference_error(name, got.cpu(), want, want64)
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


@pytest.mark.parametrize("dtype", [
    torch.float16,
    pytest.param(torch.bfloat16, marks=pytest.mark.skipif(DEVICE == "cpu", reason="the interpreter's tl.dot multiplies "
                                                          "bf16 operands as their uint16 storage")),
], ids=str)
def test_half_precision(dtype):
    compare((1, 2, 20, 23, 16), bias_shape=(2, 20, 23), causal=True, dtype=dtype)


def test_non_contiguous_inputs():
    # q, k, v and grad_out laid out as [B, L, H, d], the bias as a strided slice of a wider tensor.
    def layout(x):
        if x.dim() == 4:
            return x.transpose(1, 2).contiguous().transpose(1, 2)
        return torch.stack([x, x], dim=-1)[..., 0]
    errors = compare((1, 2, 20, 23, 12), bias_shape=(2, 20, 23), layout=layout)
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
    assert len(compiled) == 18, f"9 kernel launches x 2 dtypes, got:\n{result.stdout}"
