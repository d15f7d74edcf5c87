"""flash_attention against the fp64 reference: odd shapes, bias broadcasts with gradients, causal and bool
masks, fully masked rows, dropout (same draw as the reference, and its statistics), bf16, every SIMD level,
non-contiguous inputs, opcheck, torch.compile and bad input."""

import pytest
import torch
from attention_helpers import assert_within_reference_error, randn
from native_kernels import FLASH_ATTENTION_OPS, native_kernels_fixture

import apt_fast.functional as AF
from apt_fast.reference.dropout_hash import dropout_keep_factors
from apt_fast.reference.flash_attention import flash_attention_fwd_ref

# Every test here runs the native CPU kernels through torch.ops.apt_fast: skipped, with the reason, where they
# cannot serve (no apt_fast._C, APT_FAST_BACKEND=reference), failed where another implementation is registered.
served_natively = native_kernels_fixture(*FLASH_ATTENTION_OPS)

# (B, H, T, S, d)
SHAPES = [(2, 3, 97, 31, 59), (1, 8, 64, 130, 16), (2, 1, 1, 1, 1), (1, 2, 70, 70, 64)]
BIAS_SHAPES = [None, "full", (3, 97, 31), (2, 1, 1, 31), (31,), (97, 1)]


def make_inputs(shape, seed=0, dtype=torch.float32):
    b, h, t, s, d = shape
    q, k, v = (randn(b, h, n, d, seed=seed + i, dtype=dtype) for i, n in enumerate((t, s, s)))
    return q, k, v


def run_with_grads(fn, inputs, grad_out):
    leaves = [x.detach().clone().requires_grad_(x.is_floating_point()) if x is not None else None for x in inputs]
    out = fn(*leaves)
    wanted = [x for x in leaves if x is not None and x.requires_grad]
    return (out, *torch.autograd.grad(out, wanted, grad_out))


def compare(shape, bias_shape=None, mask_shape=None, causal=False, dtype=torch.float32, seed=0):
    b, h, t, s, d = shape
    q, k, v = make_inputs(shape, seed, dtype)
    bias = None
    if bias_shape is not None:
        bias = randn(*((b, h, t, s) if bias_shape == "full" else bias_shape), seed=seed + 7, scale=2.0, dtype=dtype)
    mask = None
    if mask_shape is not None:
        mask = torch.rand(mask_shape, generator=torch.Generator().manual_seed(seed)) > 0.3
        mask[..., 0, :] = False  # a fully masked query row
    grad_out = randn(b, h, t, d, seed=seed + 9, dtype=dtype)

    def kernel(q, k, v, bias):
        return AF.flash_attention(q, k, v, bias, mask=mask, causal=causal)

    def reference(q, k, v, bias):
        return flash_attention_fwd_ref(q, k, v, bias, mask, causal, d**-0.5)[0]

    inputs = (q, k, v, bias)
    got = run_with_grads(kernel, inputs, grad_out)
    ref = run_with_grads(reference, inputs, grad_out)
    ref64 = run_with_grads(reference, [x.double() if x is not None else None for x in inputs], grad_out.double())
    names = ["out", "dq", "dk", "dv", "dbias"]
    errors = {}
    for name, a, r, r64 in zip(names, got, ref, ref64):
        assert a.shape == r64.shape and a.dtype == dtype
        errors[name] = assert_within_reference_error(name, a, r, r64)
    return errors


@pytest.mark.parametrize("shape", SHAPES, ids=str)
@pytest.mark.parametrize("causal", [False, True])
def test_shapes_fp32(shape, causal):
    compare(shape, bias_shape="full", causal=causal)


@pytest.mark.parametrize("bias_shape", BIAS_SHAPES, ids=str)
def test_bias_broadcasts(bias_shape):
    compare((2, 3, 97, 31, 59), bias_shape=bias_shape)


@pytest.mark.parametrize("mask_shape", [(2, 1, 97, 31), (97, 31), (2, 3, 97, 31)], ids=str)
def test_bool_mask(mask_shape):
    compare((2, 3, 97, 31, 59), bias_shape=(3, 97, 31), mask_shape=mask_shape, causal=True)


def test_bf16():
    compare((1, 2, 45, 37, 32), bias_shape="full", dtype=torch.bfloat16)


def test_simd_tiers(simd_tier):
    compare((1, 2, 33, 70, 24), bias_shape=(2, 33, 70), mask_shape=(33, 70), causal=True)


def test_fully_masked_rows_give_zero():
    q, k, v = make_inputs((1, 1, 4, 5, 8))
    mask = torch.ones(4, 5, dtype=torch.bool)
    mask[2] = False
    out = AF.flash_attention(q, k, v, mask=mask)
    assert torch.all(out[0, 0, 2] == 0) and torch.isfinite(out).all()


def test_dropout_matches_reference_draw():
    """With dropout the kernel keeps the reference's exact draw: out, lse and every gradient by flash-attention's
    rule against the reference in float64 (a different draw would be off by O(1))."""
    from apt_fast.reference.flash_attention import flash_attention_bwd_ref

    shape = (2, 2, 37, 45, 16)
    q, k, v = make_inputs(shape)
    bias = randn(2, 37, 45, seed=3)
    grad_out = randn(2, 2, 37, 16, seed=4)
    seed, p = 1234, 0.3
    out, lse = torch.ops.apt_fast.flash_attention_fwd(q, k, v, bias, None, False, 0.25, p, seed)
    grads = torch.ops.apt_fast.flash_attention_bwd(grad_out, q, k, v, bias, None, out, lse, False, 0.25, p, seed, True)
    ref = {}
    for dtype in (torch.float32, torch.float64):
        args = [x.to(dtype) for x in (q, k, v, bias)]
        ref[dtype] = (*flash_attention_fwd_ref(*args, None, False, 0.25, p, seed),
                      *flash_attention_bwd_ref(grad_out.to(dtype), *args, None, False, 0.25, p, seed))
    for name, got, r32, r64 in zip(("out", "lse", "dq", "dk", "dv", "dbias"), (out, lse, *grads),
                                   ref[torch.float32], ref[torch.float64]):
        assert_within_reference_error(name, got, r32, r64)


def test_dropout_statistics():
    """Dropped fraction ~ p, kept entries scaled by 1/(1-p), and the mean output unbiased."""
    p = 0.25
    factors = dropout_keep_factors(99, (4, 8, 64, 64), p)
    dropped = (factors == 0).float().mean().item()
    assert abs(dropped - p) < 0.01, dropped
    assert torch.allclose(factors[factors > 0], torch.tensor(1 / (1 - p)))
    q, k, v = make_inputs((1, 1, 8, 400, 4))
    torch.manual_seed(0)
    outs = torch.stack([AF.flash_attention(q, k, v, dropout_p=p) for _ in range(200)])
    expected = AF.flash_attention(q, k, v)
    assert (outs.mean(0) - expected).abs().max() < 0.05
    torch.manual_seed(0)
    again = AF.flash_attention(q, k, v, dropout_p=p)
    torch.testing.assert_close(again, outs[0])  # the draw follows torch.manual_seed


def test_non_contiguous_inputs():
    b, h, t, d = 2, 4, 33, 16
    qkv = randn(b, t, 3, h, d, seed=0)
    q, k, v = (qkv[:, :, i].transpose(1, 2) for i in range(3))  # [B, H, T, d] views with row stride 3·H·d
    bias = randn(t, t, seed=1).t()  # column-major
    odd = randn(b, h, d, t, seed=2).transpose(-1, -2)  # unit stride along T, not d: copied
    for name, inputs in (("strided q, k, v, bias", (q, k, v, bias)), ("q strided along T", (odd, k, v, None))):
        reference = [flash_attention_fwd_ref(*[x.to(dtype) if x is not None else None for x in inputs], None, False,
                                             d**-0.5)[0] for dtype in (torch.float32, torch.float64)]
        assert_within_reference_error(name, AF.flash_attention(*inputs), *reference)


def test_opcheck():
    q, k, v = make_inputs((2, 2, 9, 7, 8))
    bias, mask = randn(2, 9, 7, seed=5), torch.rand(9, 7) > 0.2
    out, lse = torch.ops.apt_fast.flash_attention_fwd(q, k, v, bias, mask, True, 0.3, 0.0, 0)
    utils = ("test_schema", "test_faketensor", "test_aot_dispatch_dynamic")
    torch.library.opcheck(torch.ops.apt_fast.flash_attention_fwd.default, (q, k, v, bias, mask, True, 0.3, 0.0, 0),
                          test_utils=utils)
    torch.library.opcheck(torch.ops.apt_fast.flash_attention_bwd.default,
                          (torch.randn_like(out), q, k, v, bias, mask, out, lse, True, 0.3, 0.0, 0, True),
                          test_utils=utils)


def test_torch_compile_fullgraph():
    q, k, v = make_inputs((1, 2, 16, 16, 8))
    bias = randn(2, 16, 16, seed=3)

    def step(q, bias):
        return AF.flash_attention(q * 2.0, k, v, bias, causal=True).sum()

    compiled = torch.compile(step, fullgraph=True, backend="aot_eager")
    q1, b1 = q.clone().requires_grad_(), bias.clone().requires_grad_()
    q2, b2 = q.clone().requires_grad_(), bias.clone().requires_grad_()
    compiled(q1, b1).backward()
    step(q2, b2).backward()
    torch.testing.assert_close(q1.grad, q2.grad)
    torch.testing.assert_close(b1.grad, b2.grad)


@pytest.mark.parametrize("change, message", [
    (dict(q=torch.zeros(2, 3, 5)), "q must be 4-D [batch, heads, queries, head_dim], got shape (2, 3, 5)"),
    (dict(k=torch.zeros(2, 3, 6, 4)), "k must have shape [2, 2, S, 8] to match q (2, 2, 5, 8), got (2, 3, 6, 4)"),
    (dict(v=torch.zeros(2, 2, 7, 8)), "v must have the shape of k (2, 2, 6, 8), got (2, 2, 7, 8)"),
    (dict(k=torch.zeros(2, 2, 6, 8, dtype=torch.float64)),
     "q and k must have the same dtype, got q float32 and k float64"),
    (dict(bias=torch.zeros(3, 5, 6)), "bias must be broadcastable to [B, H, T, S] = [2, 2, 5, 6], got shape (3, 5, 6)"),
    (dict(mask=torch.ones(5, 6)), "mask must be bool, got float32"),
    (dict(mask=torch.ones(5, 5, dtype=torch.bool)),
     "mask must be broadcastable to [B, H, T, S] = [2, 2, 5, 6], got shape (5, 5)"),
    (dict(k=torch.zeros(2, 2, 6, 8, device="meta"), v=torch.zeros(2, 2, 6, 8, device="meta")),
     "k must be on cpu like q, got meta"),
])
def test_bad_input(change, message):
    args = dict(q=torch.zeros(2, 2, 5, 8), k=torch.zeros(2, 2, 6, 8), v=torch.zeros(2, 2, 6, 8), bias=None, mask=None)
    args.update(change)
    with pytest.raises(ValueError) as info:
        AF.flash_attention(args["q"], args["k"], args["v"], args["bias"], mask=args["mask"])
    assert str(info.value) == message
