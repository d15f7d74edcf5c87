"""The native distill_loss_fwd kernel (C++, at every SIMD level, called directly so it runs whatever
APT_FAST_BACKEND says) against the fp64 reference, within 2x the fp32 reference's own error (or 1e-6 of the loss,
1e-5 of max |grad|, where that is larger); and the reference itself, the oracle of these tests, against an
independent textbook formulation (tests/ops/distill_loss/distill_loss_textbook.py)."""

import pytest
import torch
from distill_loss_textbook import textbook_loss_and_grad

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
    """The summed loss within 2x the fp32 reference's largest row error against the fp64 reference (relative to
    max(|loss|, 1)), at least 1e-6; each row within 10x that; fp32 gradients within 2x the fp32 reference's
    error relative to max(max |grad|, 1e-3), at least 1e-5; low-precision gradients within one unit in the last
    place of their dtype. Returns the kernel's (loss, grad)."""
    args = (student, teacher, target, temperature, divergence, jsd_beta, alpha, ce_weight, -100, grad_scale, True)
    loss, grad = kernel(*args)
    exact_loss, exact_grad = distill_loss_fwd_ref(*args, compute_dtype=torch.float64)
    fp32_loss, fp32_grad = distill_loss_fwd_ref(*args)
    case = f"{divergence} {student.dtype} {tuple(student.shape)}"
    assert torch.isfinite(loss).all() and torch.isfinite(grad.float()).all(), f"{case}: non-finite kernel output"
    sum_err = relative_error(loss.sum(), exact_loss.sum(), floor=1.0)
    loss_err = relative_error(loss, exact_loss, floor=1.0)
    ref_err = relative_error(fp32_loss, exact_loss, floor=1.0)
    loss_tol = max(1e-6, 2 * ref_err)
    assert sum_err <= loss_tol, f"{case}: summed loss error {sum_err:.2e} > {loss_tol:.1e} (fp32 ref {ref_err:.2e})"
    assert loss_err <= 10 * loss_tol, f"{case}: a row's loss error {loss_err:.2e} > 10 x {loss_tol:.1e}"
    if student.dtype == torch.float32:
        grad_err = relative_error(grad, exact_grad, floor=1e-3)
        ref_grad_err = relative_error(fp32_grad, exact_grad, floor=1e-3)
        grad_tol = max(1e-5, 2 * ref_grad_err)
        assert grad_err <= grad_tol, (f"{case}: gradient error {grad_err:.2e} > {grad_tol:.1e} "
                                      f"(fp32 reference {ref_grad_err:.2e})")
    else:  # within one unit in the last place of the low-precision dtype
        ulp = torch.finfo(student.dtype).eps
        excess = (grad.double() - exact_grad).abs() - ulp * exact_grad.abs()
        allowed = 1e-6 * exact_grad.abs().max().item()
        assert excess.max().item() <= allowed, (f"{case}: gradient error {excess.max().item():.2e} beyond one "
                                                f"{student.dtype} ulp > {allowed:.1e}")
    return loss, grad


@needs_native
@pytest.mark.parametrize("divergence", ["forward_kl", "reverse_kl", "jsd"])
@pytest.mark.parametrize("shape", [(1, 1), (7, 17), (41, 1271), (3, 4099)])
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_native_matches_fp64_reference(simd_tier, divergence, shape, dtype):
    student, teacher, target = make_case(*shape, dtype, ignore_rows=[0] if shape[0] > 1 else [])
    check_against_fp64(cpu.distill_loss_fwd, student, teacher, target, temperature=2.5, divergence=divergence,
                       ce_weight=0.3)


@needs_native
@pytest.mark.parametrize("divergence", ["forward_kl", "reverse_kl", "jsd"])
@pytest.mark.parametrize("temperature", [1.0, 4.0])
def test_native_without_target(divergence, temperature):
    student, teacher, _ = make_case(13, 301, torch.float32, with_target=False)
    check_against_fp64(cpu.distill_loss_fwd, student, teacher, None, temperature=temperature, divergence=divergence)


@pytest.mark.parametrize("divergence", ["forward_kl", "reverse_kl", "jsd"])
@pytest.mark.parametrize("with_target", [False, True], ids=["no_target", "target_ce_ignored_rows"])
@pytest.mark.parametrize("temperature", [1.0, 4.0])
def test_reference_matches_the_textbook_formula(divergence, with_target, temperature):
    """The reference that every kernel here is measured against, against F.log_softmax / F.kl_div /
    F.cross_entropy written from the definition. Computed in float64, the reference returns float32 (its
    contract), so the two differ by that one rounding: within 2^-24 of the max, plus 1e-12 (1e4 float64 units of
    roundoff; a formula difference is a relative error of 1e-7 or more). In float32 (the reference's default)
    its error against the float64 formula is within 2x the error of the textbook formula run in float32
    (flash-attention's rule), plus 1e-7."""
    student, teacher, target = make_case(13, 301, torch.float32, ignore_rows=[0, 7] if with_target else (),
                                         with_target=with_target)
    settings = dict(temperature=temperature, divergence=divergence, jsd_beta=0.3, alpha=0.7,
                    ce_weight=0.4 if with_target else 0.0)
    args = (student, teacher, target, temperature, divergence, 0.3, 0.7, settings["ce_weight"], -100, 0.5, True)
    exact = textbook_loss_and_grad(student, teacher, target, grad_scale=0.5, **settings)
    fp32 = textbook_loss_and_grad(student, teacher, target, grad_scale=0.5, dtype=torch.float32, **settings)
    ref64 = distill_loss_fwd_ref(*args, compute_dtype=torch.float64)
    ref32 = distill_loss_fwd_ref(*args)
    if with_target:
        assert (ref64[0][[0, 7]] == 0).all() and (ref64[1][[0, 7]] == 0).all(), "ignored rows give 0"
    for name, got64, got32, want, want32 in zip(("loss", "grad"), ref64, ref32, exact, fp32):
        err64, err32 = relative_error(got64, want), relative_error(got32, want)
        textbook_err = relative_error(want32, want)
        assert err64 <= 2.0**-24 + 1e-12, f"{name}: float64 reference vs float64 textbook formula: {err64:.2e}"
        assert err32 <= 2 * textbook_err + 1e-7, (f"{name}: float32 reference error {err32:.2e} > 2 x the float32 "
                                                  f"textbook formula's {textbook_err:.2e} + 1e-7")


@needs_native
def test_native_float16_is_computed_in_float32():
    student, teacher, target = make_case(5, 300, torch.float16)
    _, grad = check_against_fp64(cpu.distill_loss_fwd, student, teacher, target, temperature=2.0,
                                 divergence="forward_kl", alpha=1.0, ce_weight=0.5, grad_scale=1.0)
    assert grad.dtype == torch.float16


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
    loss, grad = check_against_fp64(cpu.distill_loss_fwd, student, teacher, target, temperature=1.0,
                                    divergence=divergence, jsd_beta=0.5, alpha=1.0, ce_weight=0.2, grad_scale=1.0)
    assert loss[5] == 0 and (grad[5] == 0).all()


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
    check_against_fp64(cpu.distill_loss_fwd, student, teacher, None, temperature=1.0, divergence="forward_kl")


@needs_native
def test_native_rejects_out_of_range_target():
    student, teacher, target = make_case(3, 50, torch.float32)
    target[1] = 50
    with pytest.raises(ValueError, match=r"target\[1\] must be in \[0, 50\) or ignore_index \(-100\), got 50"):
        cpu.distill_loss_fwd(student, teacher, target, 1.0, "forward_kl", 0.5, 1.0, 0.5, -100, 1.0, True)
