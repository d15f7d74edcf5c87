"""apt_fast::nm_linear and nm_linear_backward: the reference against fp64 math on the dense masked weight first
(it is the oracle), then the CPU kernels against it on every vector tier (AMX off) and on AMX forced down to one
row, over 2:4 and 4:8 (the AVX-512 gather and AMX paths) and 1:4 and 3:8 (the portable path), odd shapes (M = 1,
3, 17, 65, 130, leading dims, N not a multiple of 16, K = 8 up to 2048), rows keeping nothing and groups keeping
zeros, fp32 / bf16 / int8 values, fp32 / bf16 x, bias or none, one and two threads, non-contiguous x; autograd through
apt_fast.functional and a training step; the errors for bad input. Float results are held to twice the error of
torch's own fp32 computation of the same layer against fp64 (sparse_checks); int8 outputs equal the reference bit
for bit (exact int32 sums, the same fp32 epilogue)."""

import pytest
import torch
from native_kernels import require_native
from nm_helpers import nm_mask, nm_weight, op_arguments
from simd_tiers import ALL_TIERS, VECTOR_TIERS
from sparse_checks import (
    assert_float_close,
    check_autograd_against_dense,
    check_training_against_dense,
    exact_backward,
    exact_forward,
    multiplied,
    native_tier_fixture,
    num_threads,
    torch_fp32_backward,
    torch_fp32_forward,
)

from apt_fast.functional import nm_linear
from apt_fast.reference import nm_linear as ref
from apt_fast.reference.quantized_linear import quantize_rows_ref
from apt_fast.sparsity.formats.nm import NMWeight

OPS = ("nm_linear", "nm_linear_backward")
tier = native_tier_fixture(OPS, ALL_TIERS, "nm_amx_min_rows")
vector_tier = native_tier_fixture(OPS, VECTOR_TIERS, "nm_amx_min_rows")

# (leading shape of x, N, K, n, m)
SHAPES = [((1,), 37, 104, 2, 4), ((3,), 40, 8, 2, 4), ((17,), 33, 136, 4, 8), ((65,), 70, 64, 2, 4),
          ((130,), 45, 96, 4, 8), ((2, 5), 48, 200, 2, 4), ((3,), 35, 72, 1, 4), ((17,), 20, 88, 3, 8)]
SHAPE_IDS = [f"{'x'.join(map(str, lead))}-{n_out}x{k}-{n}of{m}" for lead, n_out, k, n, m in SHAPES]
FLOAT_VALUES = (torch.float32, torch.bfloat16)


def inputs(lead, k, n_out, x_dtype, seed, bias_kind=None):
    """x [*lead, K] and a bias of kind None / 'fp32' / 'bf16'."""
    generator = torch.Generator().manual_seed(seed)
    x = (torch.randn(*lead, k, generator=generator) * 2).to(x_dtype)
    bias = torch.randn(n_out, generator=generator) if bias_kind else None
    return x, bias.bfloat16() if bias_kind == "bf16" else bias


def run_forward(x, w, bias):
    return torch.ops.apt_fast.nm_linear(x, *op_arguments(w), bias, w.out_features, w.n, w.m)


def run_backward(grad_y, x, w, need_grad_x=True, need_grad_values=True):
    return torch.ops.apt_fast.nm_linear_backward(grad_y, x, *op_arguments(w), w.n, w.m, need_grad_x,
                                                 need_grad_values)


# --- the reference, against math on the dense masked weight -------------------------------------------------------

def pruned(n_out, k, n, m, seed):
    """(weight [N, K], its n:m mask with a row keeping nothing and groups keeping fewer than n)."""
    weight = torch.randn(n_out, k, generator=torch.Generator().manual_seed(seed))
    mask = nm_mask(n_out, k, n, m, seed)
    mask[0] = False
    return weight, mask


@pytest.mark.parametrize("shape", SHAPES, ids=SHAPE_IDS)
def test_reference_float_is_the_masked_dense_layer(shape):
    lead, n_out, k, n, m = shape
    weight, mask = pruned(n_out, k, n, m, seed=k)
    for values_dtype in FLOAT_VALUES:
        w = NMWeight.pack(weight, mask, values_dtype, n=n, m=m)
        masked = weight.to(values_dtype).float() * mask  # [N, K], built without the format
        for x_dtype in FLOAT_VALUES:
            x, bias = inputs(lead, k, n_out, x_dtype, seed=n_out, bias_kind="fp32")
            xm = multiplied(x, values_dtype)
            exact = xm.double() @ masked.double().T + bias.double()
            got = ref.nm_linear_ref(x, *op_arguments(w), bias, n, m)
            assert got.dtype == x_dtype and got.shape == (*lead, n_out)
            assert_float_close(f"reference, {values_dtype} values, {x_dtype} x", got, exact,
                               torch.nn.functional.linear(xm, masked, bias))

            grad_y = torch.randn(*lead, n_out, generator=torch.Generator().manual_seed(1)).to(x_dtype)
            grad_x, grad_values = ref.nm_linear_backward_ref(grad_y, x, *op_arguments(w), n, m, True, True)
            g = grad_y.reshape(-1, n_out)  # [M, N]
            rows = xm.reshape(-1, k)  # [M, K]
            columns = w.mask().nonzero()[:, 1].reshape(n_out, -1)  # [N, K n / m]: the stored values' columns
            assert_float_close("reference grad_x", grad_x, (g.double() @ masked.double()).reshape(x.shape),
                               (g.float() @ masked).reshape(x.shape))
            assert grad_values.dtype == values_dtype
            assert_float_close("reference grad_values", grad_values, (g.double().T @ rows.double()).gather(1, columns),
                               (g.float().T @ rows).gather(1, columns))


@pytest.mark.parametrize("n, m", [(2, 4), (4, 8), (3, 8)])
@pytest.mark.parametrize("x_dtype", FLOAT_VALUES)
def test_reference_int8_is_the_integer_math(n, m, x_dtype):
    """y = (float(S) * w_scale) * a_scale + bias, S the exact integer sum of the row-quantized x and
    round(W / w_scale) on the mask; and y stays within the quantization's error bound of fp64 x . W."""
    n_out, k = 29, 96
    weight, mask = pruned(n_out, k, n, m, seed=3)
    w = NMWeight.pack(weight, mask, torch.int8, n=n, m=m)
    x, bias = inputs((2, 7), k, n_out, x_dtype, seed=4, bias_kind="fp32")
    got = ref.nm_linear_ref(x, *op_arguments(w), bias, n, m)

    masked = weight * mask  # [N, K]
    w_scale = masked.abs().amax(1) / 127  # [N]
    q = torch.round(masked / torch.where(w_scale > 0, w_scale, 1)[:, None])  # [N, K] integers
    qa, a_scale = quantize_rows_ref(x.reshape(-1, k), 8, k)  # [M, K] integers, [M, 1]
    sums = (qa.long() @ q.long().T).float()  # [M, N], exact
    want = ((sums * w_scale) * a_scale + bias).to(x_dtype).reshape(2, 7, n_out)
    assert torch.equal(got, want)

    # |xq wq - x w| <= |xq - x| |wq| + |x| |wq - w|, with |xq - x| <= a_scale / 2 and |wq - w| <= w_scale / 2
    x64, w64 = x.reshape(-1, k).double(), masked.double()
    bound = (a_scale.double() / 2) * (q.double().abs() * w_scale.double()[:, None]).sum(1) \
        + x64.abs() @ (mask.double() * w_scale.double()[:, None] / 2).T
    bound += 2.0 ** -22 * (x64.abs() @ w64.abs().T)  # the fp32 quantizations' own roundings
    exact = x64 @ w64.T + bias.double()
    # the fp32 epilogue (a few roundings of 2^-24) and the output's rounding (bf16: 2^-8)
    rounding = (2.0 ** -8 if x_dtype == torch.bfloat16 else 2.0 ** -21) * (exact.abs() + bound + bias.abs())
    assert bool(((got.reshape(-1, n_out).double() - exact).abs() <= bound + rounding).all())


# --- the CPU kernels against the reference --------------------------------------------------------------------------

@pytest.mark.parametrize("shape", SHAPES, ids=SHAPE_IDS)
def test_float_forward_on_every_tier(tier, shape):
    lead, n_out, k, n, m = shape
    for values_dtype in FLOAT_VALUES:
        w = nm_weight(n_out, k, n, m, values_dtype, seed=k)
        for x_dtype, threads, bias_kind in ((torch.float32, 1, "fp32"), (torch.bfloat16, 2, None),
                                            (torch.bfloat16, 1, "bf16")):
            x, bias = inputs(lead, k, n_out, x_dtype, seed=n_out, bias_kind=bias_kind)
            with num_threads(threads):
                got = run_forward(x, w, bias)
            label = f"{tier}, {values_dtype} values, {x_dtype} x, {threads} threads"
            assert got.dtype == x_dtype and got.shape == (*lead, n_out), label
            assert_float_close(label, got, exact_forward(x, w, bias), torch_fp32_forward(x, w, bias))
            if values_dtype == x_dtype == torch.float32:  # the layer's promise: F.linear within 1e-5 relative
                linear = torch.nn.functional.linear(x, w.to_dense(), bias)
                assert (got - linear).abs().max() <= 1e-5 * linear.abs().max(), label


@pytest.mark.parametrize("shape", SHAPES, ids=SHAPE_IDS)
def test_int8_forward_bit_identical_on_every_tier(tier, shape):
    lead, n_out, k, n, m = shape
    w = nm_weight(n_out, k, n, m, torch.int8, seed=k)
    for x_dtype, threads, bias_kind in ((torch.float32, 1, "fp32"), (torch.bfloat16, 2, None)):
        x, bias = inputs(lead, k, n_out, x_dtype, seed=n_out, bias_kind=bias_kind)
        with num_threads(threads):
            got = run_forward(x, w, bias)
        want = ref.nm_linear_ref(x, *op_arguments(w), bias, n, m)
        diff = (got.float() - want.float()).abs().max().item()
        assert torch.equal(got, want), f"{tier}, {x_dtype}: differs from the reference by {diff}"


@pytest.mark.parametrize("shape", SHAPES, ids=SHAPE_IDS)
def test_backward_on_every_tier(vector_tier, shape):
    lead, n_out, k, n, m = shape
    generator = torch.Generator().manual_seed(k)
    for values_dtype in (torch.float32, torch.bfloat16, torch.int8):
        w = nm_weight(n_out, k, n, m, values_dtype, seed=n_out)
        float_values = values_dtype != torch.int8
        for dtype, threads in ((torch.float32, 2), (torch.bfloat16, 1)):
            x = torch.randn(*lead, k, generator=generator).to(dtype)
            grad_y = torch.randn(*lead, n_out, generator=generator).to(dtype)
            with num_threads(threads):
                grad_x, grad_values = run_backward(grad_y, x, w, True, float_values)
            exact_x, exact_values = exact_backward(grad_y, x, w)
            fp32_x, fp32_values = torch_fp32_backward(grad_y, x, w)
            label = f"{vector_tier}, {values_dtype} values, {dtype}, {threads} threads"
            assert grad_x.dtype == dtype and grad_x.shape == x.shape
            assert_float_close(f"grad_x, {label}", grad_x, exact_x, fp32_x)
            if float_values:
                assert grad_values.dtype == values_dtype and grad_values.shape == w.values.shape
                assert_float_close(f"grad_values, {label}", grad_values, exact_values, fp32_values)
            else:
                assert grad_values.numel() == 0


@pytest.mark.parametrize("values_dtype", FLOAT_VALUES)
def test_each_gradient_alone_equals_both(values_dtype):
    require_native(*OPS)
    w = nm_weight(50, 104, 2, 4, values_dtype)
    x, grad_y = torch.randn(3, 104), torch.randn(3, 50)
    both = run_backward(grad_y, x, w, True, True)
    for flags in ((True, False), (False, True), (False, False)):
        for got, full, needed in zip(run_backward(grad_y, x, w, *flags), both, flags):
            assert torch.equal(got, full) if needed else got.numel() == 0


def test_non_contiguous_x_gives_the_contiguous_result(tier):
    for values_dtype in (torch.float32, torch.bfloat16, torch.int8):
        w = nm_weight(33, 96, 4, 8, values_dtype)
        transposed = torch.randn(96, 17).T  # [17, 96], stride 1 along the rows: copied
        sliced = torch.randn(17, 120)[:, 8:104]  # [17, 96], a row stride of 120
        for x in (transposed, sliced):
            assert torch.equal(run_forward(x, w, None), run_forward(x.contiguous(), w, None))
        grad_y = torch.randn(17, 40)[:, 3:36]
        if values_dtype != torch.int8:
            for got, want in zip(run_backward(grad_y, sliced, w), run_backward(grad_y.contiguous(), sliced.contiguous(),
                                                                               w)):
                assert torch.equal(got, want)


def test_zero_rows():
    require_native(*OPS)
    w = nm_weight(30, 64)
    assert run_forward(torch.zeros(0, 64), w, None).shape == (0, 30)
    assert run_forward(torch.zeros(2, 0, 64), w, torch.ones(30)).shape == (2, 0, 30)
    grad_x, grad_values = run_backward(torch.zeros(0, 30), torch.zeros(0, 64), w)
    assert grad_x.shape == (0, 64) and torch.equal(grad_values, torch.zeros_like(w.values))


@pytest.mark.parametrize("rows", [3, 40])
@pytest.mark.parametrize("n, m", [(2, 4), (4, 8)])
def test_long_sums_stay_accurate(tier, n, m, rows):
    """A larger layer (sums over 1024 of 2048 inputs forward, 300 outputs backward), fp32 and bf16 values."""
    generator = torch.Generator().manual_seed(6)
    x, grad_y = torch.randn(rows, 2048, generator=generator), torch.randn(rows, 300, generator=generator)
    for values_dtype in FLOAT_VALUES:
        w = nm_weight(300, 2048, n, m, values_dtype, seed=5)
        with num_threads(2):
            y = run_forward(x, w, None)
            grad_x, grad_values = run_backward(grad_y, x, w)
        assert_float_close(f"y, {values_dtype} values", y, exact_forward(x, w, None), torch_fp32_forward(x, w, None))
        for name, got, exact, fp32 in zip(("grad_x", "grad_values"), (grad_x, grad_values),
                                          exact_backward(grad_y, x, w), torch_fp32_backward(grad_y, x, w)):
            assert_float_close(f"{name}, {values_dtype} values", got, exact, fp32)


# --- autograd through apt_fast.functional ---------------------------------------------------------------------------

@pytest.mark.parametrize("values_dtype", FLOAT_VALUES)
@pytest.mark.parametrize("n, m", [(2, 4), (4, 8)])
def test_autograd_matches_torch_autograd_of_the_dense_masked_layer(n, m, values_dtype):
    w = nm_weight(40, 96, n, m, values_dtype, seed=n)
    check_autograd_against_dense(w, lambda x, values, bias: nm_linear(x, values, w.indices, bias, n=n, m=m))


def test_int8_values_are_frozen_and_x_and_bias_still_get_gradients():
    w = nm_weight(20, 64, 2, 4, torch.int8)
    x = torch.randn(3, 64, requires_grad=True)
    bias = torch.zeros(20, requires_grad=True)
    nm_linear(x, w.values, w.indices, bias, scales=w.scales).sum().backward()
    ones = torch.ones(3, 20)
    assert_float_close("x", x.grad, ones.double() @ w.to_dense().double(), ones @ w.to_dense())
    assert torch.equal(bias.grad, torch.full((20,), 3.0))


def test_training_steps_follow_the_dense_masked_layer():
    w = nm_weight(24, 64, 4, 8, seed=2)
    check_training_against_dense(w, lambda x, values, bias: nm_linear(x, values, w.indices, bias, n=4, m=8))


# --- bad input ------------------------------------------------------------------------------------------------------

def _bad_forward(case):
    """nm_linear's arguments for a 2:4 [16, 100] weight, one of them replaced."""
    w = nm_weight(16, 100, 2, 4, case.get("values_dtype", torch.float32))
    arguments = dict(x=torch.randn(2, 100), values=w.values, indices=w.indices, scales=w.scales, bias=None,
                     out_features=16, n=2, m=4)
    arguments.update({key: value for key, value in case.items() if key != "values_dtype"})
    return tuple(arguments.values())


@pytest.mark.parametrize("case, message", [
    (dict(x=torch.randn(2, 100, dtype=torch.float16)), "x must be float32 or bfloat16, got float16"),
    (dict(x=torch.tensor(1.0)), r"x must have shape \[\.\.\., in_features\], got \(\)"),
    (dict(x=torch.randn(2, 102)), "in_features must be a positive multiple of m=4, got 102"),
    (dict(m=6), "m must be 4 or 8, got 6"),
    (dict(n=4), r"n must be in \[1, 4\) for m=4, got 4"),
    (dict(n=0), r"n must be in \[1, 4\) for m=4, got 0"),
    (dict(out_features=0), "out_features must be >= 1, got 0"),
    (dict(values=torch.zeros(16, 50, dtype=torch.float16)), "values must be float32 or bfloat16 or int8, got float16"),
    (dict(values=torch.zeros(16, 48)), r"values must have shape \(16, 50\) for 2:4 of \[16, 100\], got \(16, 48\)"),
    (dict(out_features=15), r"values must have shape \(15, 50\) for 2:4 of \[15, 100\], got \(16, 50\)"),
    (dict(n=1), r"values must have shape \(16, 25\) for 1:4 of \[16, 100\], got \(16, 50\)"),
    (dict(indices=torch.zeros(16, 13, dtype=torch.int8)), "indices must be uint8, got int8"),
    (dict(indices=torch.zeros(16, 12, dtype=torch.uint8)),
     r"indices must have shape \(16, 13\) for 2:4 of \[16, 100\], got \(16, 12\)"),
    (dict(values_dtype=torch.int8, scales=None),
     r"scales must be a float32 tensor of shape \(16,\) for int8 values, got None"),
    (dict(values_dtype=torch.int8, scales=torch.ones(16, dtype=torch.float64)), "scales must be float32, got float64"),
    (dict(values_dtype=torch.int8, scales=torch.ones(15)), r"scales must have shape \(16,\), got \(15,\)"),
    (dict(scales=torch.ones(16)), "scales must be None for float32 values, got a tensor"),
    (dict(bias=torch.zeros(16, dtype=torch.float64)), "bias must be float32 or bfloat16, got float64"),
    (dict(bias=torch.zeros(5)), r"bias must have shape \(16,\), got \(5,\)"),
])
def test_bad_forward_input_names_the_argument(case, message):
    with pytest.raises(ValueError, match=f"^{message}$"):
        torch.ops.apt_fast.nm_linear(*_bad_forward(case))


@pytest.mark.parametrize("case, message", [
    (dict(grad_y=torch.randn(2, 15)),
     r"grad_out must have shape \[\.\.\., out_features\] with out_features = 16, got \(2, 15\)"),
    (dict(grad_y=torch.randn(3, 16)), r"grad_out must have x's leading shape \(2,\), got \(3, 16\)"),
    (dict(grad_y=torch.randn(2, 16, dtype=torch.float64)), "grad_out must be float32 or bfloat16, got float64"),
    (dict(x=torch.randn(2, 98)), "in_features must be a positive multiple of m=4, got 98"),
    (dict(values_dtype=torch.int8, need_grad_values=True),
     r"need_grad_values must be False for int8 values \(they are frozen\), got True"),
])
def test_bad_backward_input_names_the_argument(case, message):
    w = nm_weight(16, 100, 2, 4, case.get("values_dtype", torch.float32))
    x, grad_y = case.get("x", torch.randn(2, 100)), case.get("grad_y", torch.randn(2, 16))
    with pytest.raises(ValueError, match=f"^{message}$"):
        torch.ops.apt_fast.nm_linear_backward(grad_y, x, *op_arguments(w), 2, 4, True,
                                              case.get("need_grad_values", False))


def test_reference_refuses_positions_out_of_order():
    """The reference (and the format, test_nm_format) refuse positions that do not ascend within a group; the
    native kernels read the positions as given (their argument checks look at shapes and dtypes only)."""
    w = nm_weight(4, 16, 2, 4, empty_row=False)
    indices = w.indices.clone()
    indices[1, 0] = 2 | 2 << 2 | (indices[1, 0] & 0xF0)  # row 1, group 0 keeps position 2 twice
    message = r"indices must give ascending positions within each group of n=2 kept values, got \[2, 2\] in row 1, " \
              r"group 0"
    with pytest.raises(ValueError, match=message):
        ref.nm_linear_ref(torch.randn(2, 16), w.values, indices, None, None, 2, 4)
    with pytest.raises(ValueError, match=message):
        ref.nm_linear_backward_ref(torch.randn(2, 4), torch.randn(2, 16), w.values, indices, None, 2, 4, True, False)
