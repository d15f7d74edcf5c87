"""flash_attention's dtypes at the op layer: mixed q/k/v/out/grad_out dtypes are refused with both named, forward
and backward; a float32 bias meets bf16/fp16 q (autocast's fp32 parameter) and keeps a float32 gradient; fp16
is computed in float32 on the CPU; a module under torch.autocast works end to end.

Accuracy is flash-attention's rule against float64 (attention_helpers): within 2x the error of the reference run
in the inputs' precision, or, for "computed in float32", of the float32 reference rounded to the output dtype."""

import pytest
import torch
from attention_helpers import assert_within_reference_error, max_err, randn
from native_kernels import FLASH_ATTENTION_OPS, require_native

import apt_fast.functional as AF
from apt_fast.reference.flash_attention import flash_attention_fwd_ref

B, H, T, S, D = 2, 2, 9, 7, 8
F32, BF16, F16 = torch.float32, torch.bfloat16, torch.float16


def qkv(dtypes=(F32, F32, F32)):
    return [randn(B, H, n, D, seed=i, dtype=dt) for i, (n, dt) in enumerate(zip((T, S, S), dtypes))]


def forward(q, k, v, bias=None):
    return torch.ops.apt_fast.flash_attention_fwd(q, k, v, bias, None, False, D**-0.5, 0.0, 0)


def backward(grad_out, q, k, v, out, bias=None):
    lse = torch.zeros(q.shape[:3])
    return torch.ops.apt_fast.flash_attention_bwd(grad_out, q, k, v, bias, None, out, lse, False, D**-0.5, 0.0, 0,
                                                  bias is not None)


@pytest.mark.parametrize("dtypes, message", [
    ((F32, BF16, BF16), "q and k must have the same dtype, got q float32 and k bfloat16"),
    ((BF16, F32, BF16), "q and k must have the same dtype, got q bfloat16 and k float32"),
    ((BF16, BF16, F32), "k and v must have the same dtype, got k bfloat16 and v float32"),
    ((F16, F16, BF16), "k and v must have the same dtype, got k float16 and v bfloat16"),
    ((F32, F16, BF16), "q and k must have the same dtype, got q float32 and k float16"),
], ids=str)
@pytest.mark.parametrize("op", ["forward", "backward", "functional"])
def test_mixed_qkv_dtypes_name_both(dtypes, message, op):
    q, k, v = qkv(dtypes)
    with pytest.raises(ValueError) as info:
        if op == "forward":
            forward(q, k, v)
        elif op == "backward":
            backward(torch.zeros_like(q), q, k, v, torch.zeros_like(q))
        else:
            AF.flash_attention(q, k, v)
    assert str(info.value) == message


@pytest.mark.parametrize("name, message", [
    ("grad_out", "q and grad_out must have the same dtype, got q bfloat16 and grad_out float32"),
    ("out", "q and out must have the same dtype, got q bfloat16 and out float16"),
])
def test_backward_names_mixed_out_and_grad_out(name, message):
    q, k, v = qkv((BF16,) * 3)
    tensors = dict(grad_out=torch.zeros_like(q), out=torch.zeros_like(q))
    tensors[name] = tensors[name].to(F32 if name == "grad_out" else F16)
    with pytest.raises(ValueError) as info:
        backward(tensors["grad_out"], q, k, v, tensors["out"])
    assert str(info.value) == message


@pytest.mark.parametrize("q_dtype, bias_dtype, message", [
    (BF16, F16, "bias must be float32 or q's dtype bfloat16, got bias float16"),
    (F32, BF16, "bias must be float32 or q's dtype float32, got bias bfloat16"),
    (F16, torch.float64, "bias must be float32 or q's dtype float16, got bias float64"),
], ids=str)
@pytest.mark.parametrize("op", ["forward", "backward"])
def test_bias_of_another_dtype_than_q_or_float32_is_refused(q_dtype, bias_dtype, message, op):
    q, k, v = qkv((q_dtype,) * 3)
    bias = torch.zeros(H, T, S, dtype=bias_dtype)
    with pytest.raises(ValueError) as info:
        if op == "forward":
            forward(q, k, v, bias)
        else:
            backward(torch.zeros_like(q), q, k, v, torch.zeros_like(q), bias)
    assert str(info.value) == message


def grads(fn, inputs, grad_out):
    leaves = [x.detach().clone().requires_grad_() for x in inputs]
    out = fn(*leaves)
    return (out, *torch.autograd.grad(out, leaves, grad_out))


@pytest.mark.parametrize("dtype", [BF16, F16], ids=str)
def test_float32_bias_with_half_q_keeps_a_float32_gradient(dtype):
    """The kernels read the bias in fp32: out, dq, dk, dv in q's dtype and d(bias) in float32, within 2x the error
    of the reference run entirely in q's dtype (the bias rounded to it)."""
    q, k, v = qkv((dtype,) * 3)
    bias = randn(H, T, S, seed=7, scale=2.0)  # float32
    grad_out = randn(B, H, T, D, seed=9, dtype=dtype)
    reference = lambda q, k, v, bias: flash_attention_fwd_ref(q, k, v, bias, None, False, D**-0.5)[0]
    got = grads(AF.flash_attention, (q, k, v, bias), grad_out)
    ref = grads(reference, (q, k, v, bias.to(dtype)), grad_out)
    ref64 = grads(reference, [x.double() for x in (q, k, v, bias)], grad_out.double())
    for name, a, r, r64 in zip(("out", "dq", "dk", "dv", "dbias"), got, ref, ref64):
        assert a.dtype == (F32 if name == "dbias" else dtype), name
        assert_within_reference_error(name, a, r, r64)


def test_fp16_is_computed_in_float32_on_the_cpu():
    """fp16 q/k/v/bias. out: within 2x the error of the float32 reference rounded to fp16 (the one rounding an fp32
    computation cannot avoid). Gradients: below half the fp16 reference's error (measured: 0.16-0.2 of it; they
    exceed the rounded fp32 reference's error because the backward reads the saved fp16 out, as every
    implementation that saves its output must)."""
    require_native(*FLASH_ATTENTION_OPS)
    q, k, v = qkv((F16,) * 3)
    bias = randn(B, H, T, S, seed=7, scale=2.0, dtype=F16)
    grad_out = randn(B, H, T, D, seed=9, dtype=F16)
    reference = lambda q, k, v, bias: flash_attention_fwd_ref(q, k, v, bias, None, True, D**-0.5)[0]
    kernel = lambda q, k, v, bias: AF.flash_attention(q, k, v, bias, causal=True)
    got = grads(kernel, (q, k, v, bias), grad_out)
    ref16 = grads(reference, (q, k, v, bias), grad_out)
    ref32 = grads(reference, [x.float() for x in (q, k, v, bias)], grad_out.float())
    ref64 = grads(reference, [x.double() for x in (q, k, v, bias)], grad_out.double())
    assert all(a.dtype == F16 for a in got)
    assert_within_reference_error("out", got[0], ref32[0].half(), ref64[0])
    for name, a, r16, r64 in zip(("dq", "dk", "dv", "dbias"), got[1:], ref16[1:], ref64[1:]):
        assert_within_reference_error(name, a, r16, r64, slack=0.5)


class BiasedAttention(torch.nn.Module):
    """q/k/v projections and a learnable float32 bias [H, T, S]: under autocast the projections give bf16 q/k/v
    and the bias stays a float32 parameter."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.qkv = torch.nn.Linear(H * D, 3 * H * D)
        self.bias = torch.nn.Parameter(torch.randn(H, T, T))

    def forward(self, x, attention):  # x [B, T, H·D]
        q, k, v = self.qkv(x).view(B, T, 3, H, D).permute(2, 0, 3, 1, 4)  # each [B, H, T, D]
        return attention(q, k, v, self.bias)


def test_module_under_autocast_bf16():
    """Under torch.autocast("cpu", bfloat16): bf16 out, float32 parameter gradients, each within 2x the error of
    the same module running torch's math SDPA under autocast (against the module in float64). The native kernels'
    property: the reference fallback computes the softmax in bf16 too, and is less accurate than that."""
    require_native(*FLASH_ATTENTION_OPS)
    module, x = BiasedAttention(), randn(B, T, H * D, seed=3)
    grad_out = randn(B, H, T, D, seed=4)

    def sdpa(q, k, v, bias):
        with torch.nn.attention.sdpa_kernel(torch.nn.attention.SDPBackend.MATH):
            return torch.nn.functional.scaled_dot_product_attention(q, k, v, attn_mask=bias)

    def run(attention, dtype, autocast):
        copy = BiasedAttention().to(dtype)
        copy.load_state_dict(module.state_dict())
        with torch.autocast("cpu", torch.bfloat16, enabled=autocast):
            out = copy(x.to(dtype), attention)
        out.backward(grad_out.to(out.dtype))
        return out, copy.qkv.weight.grad, copy.qkv.bias.grad, copy.bias.grad

    got = run(AF.flash_attention, F32, True)
    ref = run(sdpa, F32, True)
    ref64 = run(sdpa, torch.float64, False)
    assert got[0].dtype == BF16 and all(g.dtype == F32 for g in got[1:])
    for name, a, r, r64 in zip(("out", "qkv.weight", "qkv.bias", "bias"), got, ref, ref64):
        assert_within_reference_error(name, a, r, r64)
    assert max_err(got[0], ref64[0]) > 0  # computed in bf16: not the float64 numbers
