"""The Triton distillation-loss kernel against the float64 reference.

Without CUDA the kernel runs under the Triton interpreter on CPU tensors (TRITON_INTERPRET=1 must be set
before the kernel module is imported, hence the order below), so the shapes are kept small; BLOCK_V is
forced small where a row should span several chunks.
"""

import os

import pytest
import torch

if not torch.cuda.is_available():
    os.environ.setdefault("TRITON_INTERPRET", "1")

pytest.importorskip("triton")

from apt_fast.kernels.distill_loss import distill_loss_fwd_triton
from apt_fast.reference.distill_loss import distill_loss_fwd_ref

DEVICE = "cuda" if torch.cuda.is_available() else "cpu"
DIVERGENCES = ("forward_kl", "reverse_kl", "jsd")
# flash-attention's rule: the kernel's error against the float64 reference within 2x the float32 (same inputs)
# reference's, plus a floor. Loss errors are measured relative to |loss| + alpha T^2 + ce_weight, the scale of the
# row's terms: a float32 log-sum-exp is off by a few float32 ulps in absolute terms, so a small divergence (JSD
# rows are often ~0.01) cannot be accurate relative to itself. Gradients relative to max |grad|. Measured under
# the interpreter: the kernel's errors <= 4e-7, the float32 reference's 0 (by chance, on some rows) to 2.4e-5
# (logits of 1e4: it divides by T before subtracting the max). The floor, ~17 float32 units of roundoff, covers
# a reference that happens to be exact. Compiled kernels use the hardware's approximate exp2/log2, hence the
# larger floors on a GPU; the interpreter uses numpy's.
LOSS_FLOOR = 1e-6 if DEVICE == "cpu" else 2e-5
GRAD_FLOOR = 1e-6 if DEVICE == "cpu" else 5e-5
IGNORE_INDEX = -100

# Masked lanes and -inf logits give NaN in the branch of a tl.where that is not taken.
pytestmark = pytest.mark.filterwarnings("ignore:invalid value encountered:RuntimeWarning")


def _logits(n, v, dtype, scale=3.0, seed=0):
    """Student and teacher logits [n, v], correlated like a student that learned something."""
    gen = torch.Generator().manual_seed(seed)
    teacher = torch.randn(n, v, generator=gen, dtype=torch.float64) * scale  # [n, v]
    student = 0.7 * teacher + torch.randn(n, v, generator=gen, dtype=torch.float64) * scale * 0.5  # [n, v]
    return student.to(DEVICE, dtype), teacher.to(DEVICE, dtype)


def _targets(n, v, ignored=(), seed=1):
    gen = torch.Generator().manual_seed(seed)
    target = torch.randint(0, v, (n,), generator=gen)  # [n]
    target[list(ignored)] = IGNORE_INDEX
    return target.to(DEVICE)


def _reference(student, teacher, target, *args, compute_dtype):
    return distill_loss_fwd_ref(student.cpu(), teacher.cpu(), target.cpu() if target is not None else None, *args,
                                compute_dtype=compute_dtype)


def _reference_without_masked_columns(student, teacher, target, *args, compute_dtype):
    """The reference row by row, leaving out the columns that are -inf in both student and teacher.

    Those columns have probability 0 on both sides, so the row's loss and the other columns' gradient are
    those of the row without them, and their gradient is 0. This keeps the expected values independent of
    how autograd differentiates through -inf (logaddexp(-inf, -inf), for one, has a NaN derivative).
    """
    student, teacher = student.cpu(), teacher.cpu()  # [N, V]
    loss = torch.zeros(student.shape[0], dtype=torch.float32)  # [N]
    grad = torch.zeros_like(student)  # [N, V]
    for i in range(student.shape[0]):
        keep = ~(torch.isneginf(student[i]) & torch.isneginf(teacher[i]))  # [V]
        if not keep.any():
            keep[:] = True
        row_target = None
        if target is not None:
            row_target = target[i:i + 1].cpu()  # [1]
            if row_target.item() != IGNORE_INDEX:
                row_target = keep[:row_target.item()].sum().reshape(1)  # its index among the kept columns
        row_loss, row_grad = distill_loss_fwd_ref(student[i:i + 1, keep], teacher[i:i + 1, keep], row_target, *args,
                                                  compute_dtype=compute_dtype)
        loss[i] = row_loss[0]
        grad[i, keep] = row_grad[0]
    return loss, grad


def _check(student, teacher, target, temperature, divergence, *, jsd_beta=0.5, alpha=0.8, ce_weight=0.0,
           grad_scale=0.37, compute_grad=True, block_v=None, reference=_reference):
    """Runs the kernel, the float64 reference and the same-precision reference, and compares by flash-attention's
    rule (module docstring); returns (loss, grad) of the kernel."""
    args = (temperature, divergence, jsd_beta, alpha, ce_weight, IGNORE_INDEX, grad_scale, compute_grad)
    case = f"{divergence} T={temperature} {student.dtype} {tuple(student.shape)}"
    loss, grad = distill_loss_fwd_triton(student, teacher, target, *args, block_v=block_v)
    ref_loss, ref_grad = reference(student, teacher, target, *args, compute_dtype=torch.float64)
    fp32_loss, fp32_grad = reference(student, teacher, target, *args, compute_dtype=torch.float32)
    loss, grad = loss.cpu(), grad.cpu()
    assert loss.dtype == torch.float32 and loss.shape == ref_loss.shape
    terms = ref_loss.double().abs() + alpha * temperature**2 + ce_weight  # [N] the scale of each row's terms
    scaled_err = ((loss.double() - ref_loss.double()).abs() / terms).max().item()
    fp32_scaled_err = ((fp32_loss.double() - ref_loss.double()).abs() / terms).max().item()
    allowed = 2 * fp32_scaled_err + LOSS_FLOOR
    assert scaled_err <= allowed, (f"{case}: loss error / (|loss| + alpha T^2 + ce_weight) {scaled_err:.2e} > "
                                   f"{allowed:.2e} = 2 x the float32 reference's {fp32_scaled_err:.2e} + floor")
    if not compute_grad:
        assert grad.numel() == 0 and grad.dtype == student.dtype
        return loss, grad
    assert grad.dtype == student.dtype and grad.shape == student.shape
    diff = (grad.double() - ref_grad.double()).abs()  # [N, V]
    scale = ref_grad.double().abs().max().clamp_min(1e-30).item()
    if student.dtype == torch.float32:
        err, fp32_err = diff.max().item() / scale, (fp32_grad.double() - ref_grad.double()).abs().max().item() / scale
        allowed = 2 * fp32_err + GRAD_FLOOR
        assert err <= allowed, (f"{case}: gradient error / max |grad| {err:.2e} > {allowed:.2e} = 2 x the float32 "
                                f"reference's {fp32_err:.2e} + {GRAD_FLOOR:g}")
    else:  # both sides round to the low-precision dtype: allow one ulp of each element
        ulp = 2.0 ** -7 if student.dtype == torch.bfloat16 else 2.0 ** -10
        excess = (diff - ulp * ref_grad.double().abs()).max().item() / scale  # [N, V]
        assert excess <= GRAD_FLOOR, (f"{case}: gradient error beyond one {student.dtype} ulp / max |grad| "
                                      f"{excess:.2e} > {GRAD_FLOOR:g}")
    return loss, grad


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
@pytest.mark.parametrize("temperature", [1.0, 2.5])
@pytest.mark.parametrize("divergence", DIVERGENCES)
def test_chunked_rows_with_targets_and_ce(divergence, temperature, dtype):
    student, teacher = _logits(7, 300, dtype)
    target = _targets(7, 300, ignored=(2, 5))
    _check(student, teacher, target, temperature, divergence, jsd_beta=0.3, ce_weight=0.4, block_v=128)


@pytest.mark.parametrize("shape,block_v", [((1, 1), None), ((13, 17), None), ((13, 300), None), ((7, 1271), 256)])
@pytest.mark.parametrize("divergence", DIVERGENCES)
def test_shapes_without_target(divergence, shape, block_v):
    student, teacher = _logits(*shape, torch.float32, seed=shape[1])
    _check(student, teacher, None, 1.0, divergence, block_v=block_v)


@pytest.mark.parametrize("divergence", DIVERGENCES)
def test_target_without_ce_ignores_rows(divergence):
    student, teacher = _logits(13, 17, torch.float32)
    loss, grad = _check(student, teacher, _targets(13, 17, ignored=(0, 6, 12)), 2.5, divergence, jsd_beta=0.7)
    assert torch.all(loss[[0, 6, 12]] == 0) and torch.all(grad[[0, 6, 12]] == 0)


@pytest.mark.parametrize("temperature", [1.0, 2.5])
@pytest.mark.parametrize("divergence", DIVERGENCES)
def test_masked_vocab_and_dead_rows(divergence, temperature):
    n, v = 7, 300
    student, teacher = _logits(n, v, torch.float32)
    gen = torch.Generator().manual_seed(2)
    masked = (torch.rand(n, v, generator=gen) < 0.3).to(DEVICE)  # [n, v] padded vocab, in both
    masked[:, 200:] = True  # whole trailing chunks of padding
    student = student.masked_fill(masked, float("-inf"))
    teacher = teacher.masked_fill(masked, float("-inf"))
    student[1] = float("-inf")  # fully masked rows: both, student only, teacher only
    teacher[1] = float("-inf")
    student[3] = float("-inf")
    teacher[4] = float("-inf")
    target = torch.argmax(student.nan_to_num(neginf=-1e9), dim=-1)  # [n] an unmasked entry
    target[5] = IGNORE_INDEX
    loss, grad = _check(student, teacher, target, temperature, divergence, ce_weight=0.25, block_v=64,
                        reference=_reference_without_masked_columns)
    assert torch.all(loss[[1, 3, 4, 5]] == 0) and torch.all(grad[[1, 3, 4, 5]] == 0)
    assert torch.all(grad[masked.cpu()] == 0) and torch.isfinite(loss).all()


@pytest.mark.parametrize("temperature", [1.0, 2.5])
@pytest.mark.parametrize("divergence", DIVERGENCES)
def test_large_logits(divergence, temperature):
    # Rows 0-3: logits of magnitude 1e4 with ordinary spreads (their log-probabilities need the max
    # subtracted before the division by T); rows 4-6: spreads of 1e4 (near one-hot softmaxes).
    student, teacher = _logits(7, 300, torch.float64, scale=3.0)
    wide_s, wide_t = _logits(7, 300, torch.float64, scale=1e4, seed=3)
    offset = torch.tensor([1e4, -1e4, 2e4, -5e3], dtype=torch.float64, device=DEVICE)[:, None]  # [4, 1]
    student = torch.cat([student[:4] + offset, wide_s[4:]]).float()  # [7, 300]
    teacher = torch.cat([teacher[:4] + offset, wide_t[4:]]).float()  # [7, 300]
    student[6, :5] = 1e4  # ties at the maximum
    teacher[6, :5] = 1e4
    _check(student, teacher, _targets(7, 300, ignored=(5,)), temperature, divergence, ce_weight=0.5, block_v=128)


@pytest.mark.parametrize("divergence", DIVERGENCES)
def test_loss_only(divergence):
    student, teacher = _logits(13, 300, torch.bfloat16)
    _check(student, teacher, _targets(13, 300, ignored=(4,)), 2.5, divergence, ce_weight=0.1, compute_grad=False,
           block_v=128)


def test_float16_and_row_strides():
    base_s, base_t = _logits(7, 320, torch.float16)
    student, teacher = base_s[:, 3:303], base_t[::1, :300]  # [7, 300] row strides 320, not contiguous
    assert not student.is_contiguous()
    _check(student, teacher, _targets(7, 300, ignored=(1,)), 2.5, "jsd", jsd_beta=0.2, ce_weight=0.3, block_v=128)


def test_identical_distributions_give_zero_divergence():
    student, _ = _logits(7, 300, torch.float32)
    for divergence in DIVERGENCES:
        loss, grad = distill_loss_fwd_triton(student, student, None, 2.5, divergence, 0.5, 1.0, 0.0, IGNORE_INDEX,
                                             1.0, True)
        assert loss.abs().max().item() < 1e-6 and grad.abs().max().item() < 1e-6
