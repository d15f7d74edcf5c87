"""The distill_loss_fwd kernels (native C++ at every SIMD level, and the fp32 reference) against the
fp64 reference: loss relative error <= 1e-6 in fp32, gradients <= 1e-5 of max |grad|."""

import pytest
import torch

from apt_fast import _native
from apt_fast.backends.cpu import distill_loss as cpu
from apt_fast.reference.distill_loss import distill_loss_fwd_ref

needs_native = pytest.mark.skipif(not _native.is_available(), reason="apt_fast._C is not built")


def make_case(rows, vocab, dtype, scale=3.0, seed=0, ignore_rows=(), with_target=True):
    generator = torch.Generator().manual_seed(seed)
    student = (torch.randn(rows, vocab, generator=generator) * scale).to(dtype)  # [N, V]
    teacher = (torch.randn(rows, vocab, generator=generator) * scale).to(dtype)  # [N, V]
    target = torch.randint(0, vocab, (rows,), generator=generator) if with_target else None  # [N]
    for row in ignore_rows:
        target[row] = -100
    return student, teacher, target


def relative_error(actual, expected, floor=1e-6):
    """max |actual - expected| relative to max |expected| (at least `floor`, so exact zeros compare absolutely)."""
    scale = max(expected.double().abs().max().item(), floor)
    return (actual.double() - expected.double()).abs().max().item() / scale


def check_against_fp64(kernel, student, teacher, target, *, temperature, divergence, jsd_beta=0.4, alpha=0.7,
                       ce_weight=0.0, grad_scale=0.5):
    """Summed loss within 1e-6 relative (absolute below |loss| = 1; each row within 1e-5) and fp32 gradients within 1e-5 of max |grad| of
    the fp64 reference, or within 2x the fp32 reference's own error where that is larger (degenerate rows)."""
    args = (student, teacher, target, temperature, divergence, jsd_beta, alpha, ce_weight, -100, grad_scale, True)
    loss, grad = kernel(*args)
    exact_loss, exact_grad = distill_loss_fwd_ref(*args, compute_dtype=torch.float64)
    fp32_loss, fp32_grad = distill_loss_fwd_ref(*args)
    loss_err = relative_error(loss, exact_loss, floor=1.0)
    loss_tol = max(1e-6, 2 * relative_error(fp32_loss, exact_loss, floor=1.0))
    print(f"{divergence} {student.dtype} loss err {loss_err:.2e} (tol {loss_tol:.1e})")
    assert torch.isfinite(loss).all() and torch.isfinite(grad.float()).all()
    assert relative_error(loss.sum(), exact_loss.sum(), floor=1.0) <= loss_tol  # the reduced loss
    assert loss_err <= 10 * loss_tol  # each row
    if student.dtype == torch.float32:
        grad_err = relative_error(grad, exact_grad, floor=1e-3)
        grad_tol = max(1e-5, 2 * relative_error(fp32_grad, exact_grad, floor=1e-3))
        print(f"  grad err {grad_err:.2e} (tol {grad_tol:.1e})")
        assert grad_err <= grad_tol
    else:  # within one unit in the last place of the low-precision dtype
        ulp = torch.finfo(student.dtype).eps
        allowed = ulp * exact_grad.abs() + 1e-6 * exact_grad.abs().max()
        assert ((grad.double() - exact_grad).abs() <= allowed).all()


KERNELS = {"native": cpu.distill_loss_fwd, "reference": distill_loss_fwd_ref}


@needs_native
@pytest.mark.parametrize("divergence", ["forward_kl", "reverse_kl", "jsd"])
@pytest.mark.parametrize("shape", [(1, 1), (7, 17), (41, 1271), (3, 4099)])
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_native_matches_fp64_reference(simd_tier, divergence, shape, dtype):
    student, teacher, target = make_case(*shape, dtype, ignore_rows=[0] if shape[0] > 1 else [])
    check_against_fp64(cpu.distill_loss_fwd, student, teacher, target, temperature=2.5, divergence=divergence,
                       ce_weight=0.3)


@pytest.mark.parametrize("kernel", KERNELS, ids=list(KERNELS))
@pytest.mark.parametrize("divergence", ["forward_kl", "reverse_kl", "jsd"])
@pytest.mark.parametrize("temperature", [1.0, 4.0])
def test_kernels_without_target(kernel, divergence, temperature):
    if kernel == "native" and not _native.is_available():
        pytest.skip("apt_fast._C is not built")
    student, teacher, _ = make_case(13, 301, torch.float32, with_target=False)
    check_against_fp64(KERNELS[kernel], student, teacher, None, temperature=temperature, divergence=divergence)


@needs_native
def test_native_float16_is_computed_in_float32():
    student, teacher, target = make_case(5, 300, torch.float16)
    loss, grad = cpu.distill_loss_fwd(student, teacher, target, 2.0, "forward_kl", 0.5, 1.0, 0.5, -100, 1.0, True)
    exact_loss, _ = distill_loss_fwd_ref(student, teacher, target, 2.0, "forward_kl", 0.5, 1.0, 0.5, -100, 1.0, True,
                                         compute_dtype=torch.float64)
    assert grad.dtype == torch.float16
    assert relative_error(loss, exact_loss) <= 1e-5


@needs_native
@pytest.mark.parametrize("divergence", ["forward_kl", "reverse_kl", "jsd"])
def test_numerically_safe_inputs(simd_tier, divergence):
    student, teacher, target = make_case(6, 257, torch.float32, scale=1e4)
    student.clamp_(-1e4, 1e4)
    teacher.clamp_(-1e4, 1e4)
    masked = torch.zeros(257, dtype=torch.bool)
    masked[::3] = True
    student[:, masked] = float("-inf")  # vocabulary entries masked in both distributions
    teacher[:, masked] = float("-inf")
    target[target % 3 == 0] = 1
    student[5] = float("-inf")  # a fully masked row contributes nothing
    loss, grad = cpu.distill_loss_fwd(student, teacher, target, 1.0, divergence, 0.5, 1.0, 0.2, -100, 1.0, True)
    exact_loss, exact_grad = distill_loss_fwd_ref(student, teacher, target, 1.0, divergence, 0.5, 1.0, 0.2, -100,
                                                  1.0, True, compute_dtype=torch.float64)
    assert torch.isfinite(loss).all() and torch.isfinite(grad).all()
    assert loss[5] == 0 and (grad[5] == 0).all()
    assert relative_error(loss, exact_loss) <= 1e-5
    assert relative_error(grad, exact_grad) <= 1e-5


@needs_native
def test_all_rows_ignored_give_zero():
    student, teacher, target = make_case(4, 100, torch.float32)
    target.fill_(-100)
    loss, grad = cpu.distill_loss_fwd(student, teacher, target, 2.0, "jsd", 0.5, 1.0, 0.3, -100, 1.0, True)
    assert (loss == 0).all() and (grad == 0).all()


@needs_native
def test_compute_grad_false_skips_the_gradient():
    student, teacher, target = make_case(4, 100, torch.float32)
    loss, grad = cpu.distill_loss_fwd(student, teacher, target, 2.0, "forward_kl", 0.5, 1.0, 0.0, -100, 1.0, False)
    assert grad.numel() == 0 and loss.shape == (4,)


@needs_native
def test_row_strided_inputs_are_read_in_place():
    wide = torch.randn(9, 600)
    student, teacher = wide[:, :300], wide[:, 300:]  # row stride 600, unit stride along vocab
    check_against_fp64(cpu.distill_loss_fwd, student, teacher, None, temperature=1.5, divergence="reverse_kl")


@needs_native
def test_column_strided_inputs_are_copied_not_misread():
    student = torch.randn(300, 9).t()  # [9, 300] with stride 9 along vocab
    teacher = torch.randn(9, 300)
    loss, _ = cpu.distill_loss_fwd(student, teacher, None, 1.0, "forward_kl", 0.5, 1.0, 0.0, -100, 1.0, False)
    exact_loss, _ = distill_loss_fwd_ref(student, teacher, None, 1.0, "forward_kl", 0.5, 1.0, 0.0, -100, 1.0, False,
                                         compute_dtype=torch.float64)
    assert relative_error(loss, exact_loss) <= 1e-6


@needs_native
def test_native_rejects_out_of_range_target():
    student, teacher, target = make_case(3, 50, torch.float32)
    target[1] = 50
    with pytest.raises(ValueError, match=r"target\[1\] must be in \[0, 50\) or ignore_index \(-100\), got 50"):
        cpu.distill_loss_fwd(student, teacher, target, 1.0, "forward_kl", 0.5, 1.0, 0.5, -100, 1.0, True)
