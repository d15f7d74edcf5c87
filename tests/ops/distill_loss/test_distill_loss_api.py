"""distill_loss through the public API: reductions and autograd against naive PyTorch, opcheck,
torch.compile, the module, the lm_head-fused and sparse-teacher variants, and bad input."""

import pytest
import torch
import torch.nn.functional as F
from distill_loss_textbook import textbook_loss

import apt_fast
import apt_fast.functional as AF
from apt_fast.losses.chunked import densify_topk_teacher

T = 4.0


def naive_loss(student, teacher, target=None, *, temperature=T, divergence="forward_kl", jsd_beta=0.5, alpha=1.0,
               beta=0.0, ignore_index=-100, reduction="batchmean", dtype=torch.float64):
    """The textbook formula (distill_loss_textbook.py: torch's log_softmax / kl_div / cross_entropy, independent
    of apt_fast.reference) in `dtype` with autograd, reduced: the oracle for the API."""
    per_row = textbook_loss(student, teacher, target, temperature=temperature, divergence=divergence,
                            jsd_beta=jsd_beta, alpha=alpha, ce_weight=beta, ignore_index=ignore_index, dtype=dtype)
    live = torch.ones(student.shape[0], dtype=torch.bool) if target is None else target != ignore_index
    return {"none": per_row, "sum": per_row.sum(), "mean": per_row.sum() / live.sum().clamp_min(1),
            "batchmean": per_row.sum() / student.shape[0]}[reduction]


def assert_as_accurate_as_the_formula(name, got, exact, fp32):
    """flash-attention's rule against the textbook formula: the API's error against the formula in float64 within
    2x the formula's own float32 error, plus 1e-6 of the largest value (~17 float32 units of roundoff: one float32
    error is a single sample that can be small by chance, and the kernel's measured 1-3.6x the formula's on these
    cases; a wrong formula or reduction is off by 1e-3 or more)."""
    err, ref_err = (got.double() - exact).abs().max().item(), (fp32.double() - exact).abs().max().item()
    allowed = 2 * ref_err + 1e-6 * exact.abs().max().item()
    assert err <= allowed, (f"{name}: error {err:.2e} > {allowed:.2e} = 2 x the float32 formula's {ref_err:.2e} "
                            f"+ 1e-6 x max {exact.abs().max().item():.2e}")


def random_logits(rows=37, vocab=211, seed=0, dtype=torch.float32):
    g = torch.Generator().manual_seed(seed)
    return (torch.randn(rows, vocab, generator=g) * 2).to(dtype), (torch.randn(rows, vocab, generator=g) * 2).to(dtype)


@pytest.mark.parametrize("reduction", ["none", "sum", "mean", "batchmean"])
@pytest.mark.parametrize("divergence", ["forward_kl", "reverse_kl", "jsd"])
def test_reductions_and_gradients_match_naive(reduction, divergence):
    student, teacher = random_logits()
    target = torch.randint(0, 211, (37,))
    target[::5] = -100
    settings = dict(temperature=T, divergence=divergence, jsd_beta=0.3, alpha=0.7, beta=0.3, reduction=reduction)
    s1 = student.clone().requires_grad_()
    s2 = student.double().requires_grad_()
    s3 = student.clone().requires_grad_()
    loss = AF.distill_loss(s1, teacher, target, **settings)
    expected = naive_loss(s2, teacher, target, **settings)
    fp32 = naive_loss(s3, teacher, target, dtype=torch.float32, **settings)
    upstream = torch.randn_like(expected)
    loss.backward(upstream.float())
    expected.backward(upstream)
    fp32.backward(upstream.float())
    assert_as_accurate_as_the_formula(f"{reduction} {divergence} loss", loss.detach(), expected.detach(), fp32.detach())
    assert_as_accurate_as_the_formula(f"{reduction} {divergence} grad", s1.grad, s2.grad, s3.grad)


def test_leading_dims_are_flattened_and_restored():
    student, teacher = random_logits(12, 50)
    loss = AF.distill_loss(student.view(3, 4, 50), teacher.view(3, 4, 50), reduction="none")
    assert loss.shape == (3, 4)


def test_all_ignored_mean_is_zero_not_nan():
    student, teacher = random_logits(6, 40)
    s = student.clone().requires_grad_()
    loss = AF.distill_loss(s, teacher, torch.full((6,), -100), reduction="mean", beta=0.5)
    loss.backward()
    assert loss.item() == 0.0 and torch.isfinite(s.grad).all() and (s.grad == 0).all()


def test_bfloat16_inputs_follow_the_fp64_formula():
    student, teacher = random_logits(41, 1271, dtype=torch.bfloat16)
    s = student.clone().requires_grad_()
    loss = AF.distill_loss(s, teacher, temperature=2.0)
    loss.backward()
    assert s.grad.dtype == torch.bfloat16
    assert_as_accurate_as_the_formula("loss", loss.detach(), naive_loss(student, teacher, temperature=2.0),
                                      naive_loss(student, teacher, temperature=2.0, dtype=torch.float32))


def test_module_matches_functional():
    student, teacher = random_logits()
    criterion = apt_fast.DistillationLoss(temperature=T, alpha=0.7, beta=0.3)
    target = torch.randint(0, 211, (37,))
    assert "temperature=4.0" in repr(criterion)
    torch.testing.assert_close(criterion(student, teacher, target),
                               AF.distill_loss(student, teacher, target, temperature=T, alpha=0.7, beta=0.3))


def test_vocab_padding_pads_with_zero_probability():
    student, teacher = random_logits(5, 30)
    padded = F.pad(teacher[:, :20], (0, 10), value=float("-inf"))
    loss = AF.distill_loss(student, teacher[:, :20], vocab_padding="pad", divergence="reverse_kl")
    torch.testing.assert_close(loss, AF.distill_loss(student, padded, divergence="reverse_kl"))


def test_backward_twice_is_refused():
    student, teacher = random_logits(4, 10)
    s = student.clone().requires_grad_()
    loss = AF.distill_loss(s, teacher)
    loss.backward(retain_graph=True)
    with pytest.raises(RuntimeError, match="once per forward"):
        loss.backward()


def test_opcheck():
    student, teacher = random_logits(9, 33)
    target = torch.randint(0, 33, (9,))
    for args in [(student, teacher, target, 2.0, "jsd", 0.5, 0.7, 0.3, -100, 0.25, True),
                 (student.bfloat16(), teacher.bfloat16(), None, 1.0, "forward_kl", 0.5, 1.0, 0.0, -100, 1.0, False)]:
        torch.library.opcheck(torch.ops.apt_fast.distill_loss_fwd.default, args,
                              test_utils=("test_schema", "test_faketensor", "test_aot_dispatch_dynamic"))


def test_torch_compile_fullgraph():
    student, teacher = random_logits(8, 64)

    def step(s, t):
        return AF.distill_loss(s * 1.5, t, temperature=2.0, reduction="batchmean")

    compiled = torch.compile(step, fullgraph=True, backend="aot_eager")
    s1, s2 = student.clone().requires_grad_(), student.clone().requires_grad_()
    compiled(s1, teacher).backward()
    step(s2, teacher).backward()
    torch.testing.assert_close(s1.grad, s2.grad)


# --- lm_head-fused and sparse-teacher variants ----------------------------------------------------

@pytest.mark.parametrize("divergence", ["forward_kl", "reverse_kl", "jsd"])
@pytest.mark.parametrize("reduction", ["sum", "mean", "batchmean"])
@pytest.mark.parametrize("teacher_as", ["logits", "hidden"])
def test_fused_linear_matches_materialised_logits(reduction, teacher_as, divergence):
    g = torch.Generator().manual_seed(1)
    hidden = torch.randn(23, 16, generator=g, requires_grad=True)
    weight = (torch.randn(301, 16, generator=g) * 0.3).requires_grad_()
    bias = (torch.randn(301, generator=g) * 0.1).requires_grad_()
    teacher_hidden, teacher_weight = torch.randn(23, 8, generator=g), torch.randn(301, 8, generator=g) * 0.3
    target = torch.randint(0, 301, (23,), generator=g)
    target[3] = -100
    teacher = {"teacher_logits": teacher_hidden @ teacher_weight.t()} if teacher_as == "logits" else \
        {"teacher_hidden": teacher_hidden, "teacher_weight": teacher_weight}
    settings = dict(temperature=2.0, alpha=0.6, beta=0.4, reduction=reduction, divergence=divergence)
    loss = AF.fused_linear_distill_loss(hidden, weight, target, student_bias=bias, block_vocab=64,
                                        **teacher, **settings)
    grads = torch.autograd.grad(loss * 3.0, [hidden, weight, bias])
    reference = AF.distill_loss(hidden @ weight.t() + bias, teacher_hidden @ teacher_weight.t(), target, **settings)
    expected = torch.autograd.grad(reference * 3.0, [hidden, weight, bias])
    torch.testing.assert_close(loss, reference, rtol=1e-6, atol=1e-6)
    for got, want in zip(grads, expected):
        torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-6)


def test_sparse_teacher_equals_dense_teacher_with_the_same_distribution():
    student, teacher = random_logits(11, 97)
    log_probs = F.log_softmax(teacher, -1)
    values, indices = log_probs.topk(16, dim=-1)
    dense = densify_topk_teacher(values, indices, 97, torch.float32)
    assert torch.allclose(dense.exp().sum(-1), torch.ones(11), atol=1e-5)  # a full distribution
    s1, s2 = student.clone().requires_grad_(), student.clone().requires_grad_()
    loss = AF.sparse_teacher_distill_loss(s1, values, indices, temperature=2.0, chunk_rows=4)
    expected = AF.distill_loss(s2, dense, temperature=2.0)
    loss.backward()
    expected.backward()
    torch.testing.assert_close(loss, expected)
    torch.testing.assert_close(s1.grad, s2.grad)


def test_sparse_teacher_with_all_mass_in_topk():
    student, teacher = random_logits(3, 8)
    values, indices = F.log_softmax(teacher, -1).topk(8, dim=-1)
    loss = AF.sparse_teacher_distill_loss(student, values, indices)
    torch.testing.assert_close(loss, AF.distill_loss(student, teacher))


# --- bad input ------------------------------------------------------------------------------------

@pytest.mark.parametrize("kwargs, message", [
    (dict(temperature=0.0), r"temperature must be in \(0.0, inf\], got 0.0"),
    (dict(alpha=1.5), r"alpha must be in \[0.0, 1.0\], got 1.5"),
    (dict(beta=-0.1), r"beta must be in \[0.0, 1.0\], got -0.1"),
    (dict(divergence="kl"), r"divergence must be one of 'forward_kl', 'reverse_kl', 'jsd', got 'kl'"),
    (dict(reduction="avg"), r"reduction must be one of 'none', 'sum', 'mean', 'batchmean', got 'avg'"),
    (dict(divergence="jsd", jsd_beta=1.0), r"jsd_beta must be in \(0.0, 1.0\), got 1.0"),
])
def test_bad_settings_name_the_argument(kwargs, message):
    student, teacher = random_logits(2, 5)
    with pytest.raises(ValueError, match=message):
        AF.distill_loss(student, teacher, **kwargs)


def test_bad_tensors_name_the_argument():
    student, teacher = random_logits(4, 10)
    with pytest.raises(ValueError, match=r"teacher_logits must have the student's vocabulary size 10, got 9"):
        AF.distill_loss(student, teacher[:, :9])
    with pytest.raises(ValueError,
                       match=r"teacher_logits must be torch.float32 like student_logits, got torch.bfloat16"):
        AF.distill_loss(student, teacher.bfloat16())
    with pytest.raises(ValueError, match=r"student_logits must be float32 or bfloat16 or float16, got int64"):
        AF.distill_loss(student.long(), teacher.long())
    with pytest.raises(ValueError, match=r"target must be int64, got int32"):
        AF.distill_loss(student, teacher, torch.zeros(4, dtype=torch.int32))
    with pytest.raises(ValueError, match=r"target is required when the cross-entropy weight is non-zero"):
        AF.distill_loss(student, teacher, beta=0.5)
    with pytest.raises(ValueError, match=r"teacher_logits must not require grad"):
        AF.distill_loss(student, teacher.requires_grad_())
    with pytest.raises(ValueError, match=r"teacher_logits must have 4 rows like student_logits, got 3"):
        torch.ops.apt_fast.distill_loss_fwd(student, teacher[:3], None, 1.0, "forward_kl", 0.5, 1.0, 0.0, -100, 1.0,
                                            False)
