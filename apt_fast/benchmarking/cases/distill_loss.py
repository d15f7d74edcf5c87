"""Distillation-loss benchmarks: apt_fast's fused loss against naive PyTorch with autograd,
forward + backward, fp32, temperature 4.

naive = kl_div(log_softmax(s/T), log_softmax(t/T), log_target=True, reduction='batchmean') * T^2.
Peak memory excludes what both must return: the student gradient (and the lm_head's parameter gradients).
"""

from __future__ import annotations

from functools import partial

import torch
import torch.nn.functional as F

from ... import functional as AF
from ..harness import BenchCase
from ..targets import Targets
from .common import assert_close

TEMPERATURE = 4.0


def naive_kl(student_logits: torch.Tensor, teacher_logits: torch.Tensor) -> torch.Tensor:
    log_ps = F.log_softmax(student_logits / TEMPERATURE, dim=-1)  # [N, V]
    log_pt = F.log_softmax(teacher_logits / TEMPERATURE, dim=-1)  # [N, V]
    return F.kl_div(log_ps, log_pt, log_target=True, reduction="batchmean") * TEMPERATURE**2


# --- logits in, logits gradient out ---------------------------------------------------------------

def _logits_inputs(rows: int, vocab: int, quick: bool):
    generator = torch.Generator().manual_seed(0)
    rows = min(rows, 1024) if quick else rows
    student = torch.randn(rows, vocab, generator=generator) * 3  # [N, V]
    teacher = torch.randn(rows, vocab, generator=generator) * 3  # [N, V]
    return student, teacher


def _logits_prepare(inputs):
    student, teacher = inputs
    return student.detach().clone().requires_grad_(True), teacher


def _logits_run(loss_fn, args):
    student, teacher = args
    loss = loss_fn(student, teacher)
    loss.backward()
    return loss.detach(), student.grad


def _logits_check(baseline, candidate):
    assert_close("loss", baseline[0], candidate[0], 1e-5)
    assert_close("student gradient", baseline[1], candidate[1], 1e-5)


def _logits_case(rows: int, vocab: int, quick: bool) -> BenchCase:
    return BenchCase(
        name=f"distill_loss_fwd_bwd[{rows}x{vocab}]",
        family="distill_loss",
        shape=lambda inputs: f"BT={inputs[0].shape[0]} V={inputs[0].shape[1]} fp32 T={TEMPERATURE:g}",
        make_inputs=partial(_logits_inputs, rows, vocab),
        prepare=_logits_prepare,
        baseline=partial(_logits_run, naive_kl),
        candidate=partial(_logits_run, partial(AF.distill_loss, temperature=TEMPERATURE)),
        check=_logits_check,
        baseline_name="naive kl_div+autograd",
        targets=Targets(max_time_ratio=0.35, max_mem_ratio=0.0625),
        unavoidable_bytes=lambda inputs: inputs[0].numel() * inputs[0].element_size(),
        quick=quick,
    )


# --- hidden states and lm_head in, parameter gradients out ---------------------------------------

def _linear_inputs(rows: int, vocab: int, hidden: int, quick: bool):
    generator = torch.Generator().manual_seed(0)
    rows = min(rows, 256) if quick else rows
    student_hidden = torch.randn(rows, hidden, generator=generator)  # [N, H]
    student_weight = torch.randn(vocab, hidden, generator=generator) * hidden**-0.5  # [V, H]
    teacher_hidden = torch.randn(rows, hidden, generator=generator)  # [N, H]
    teacher_weight = torch.randn(vocab, hidden, generator=generator) * hidden**-0.5  # [V, H]
    return student_hidden, student_weight, teacher_hidden, teacher_weight


def _linear_prepare(inputs):
    student_hidden, student_weight, teacher_hidden, teacher_weight = inputs
    return (student_hidden.detach().clone().requires_grad_(True), student_weight.detach().clone().requires_grad_(True),
            teacher_hidden, teacher_weight)


def _linear_naive(args):
    student_hidden, student_weight, teacher_hidden, teacher_weight = args
    with torch.no_grad():
        teacher_logits = teacher_hidden @ teacher_weight.t()  # [N, V]
    loss = naive_kl(student_hidden @ student_weight.t(), teacher_logits)
    loss.backward()
    return loss.detach(), student_hidden.grad, student_weight.grad


def _linear_fused(args):
    student_hidden, student_weight, teacher_hidden, teacher_weight = args
    loss = AF.fused_linear_distill_loss(student_hidden, student_weight, teacher_hidden=teacher_hidden,
                                        teacher_weight=teacher_weight, temperature=TEMPERATURE)
    loss.backward()
    return loss.detach(), student_hidden.grad, student_weight.grad


def _linear_check(baseline, candidate):
    assert_close("loss", baseline[0], candidate[0], 1e-5)
    assert_close("hidden-state gradient", baseline[1], candidate[1], 1e-4)
    assert_close("weight gradient", baseline[2], candidate[2], 1e-4)


def _linear_case(rows: int, vocab: int, hidden: int, quick: bool) -> BenchCase:
    return BenchCase(
        name=f"fused_linear_distill_loss[{rows}x{hidden}->{vocab}]",
        family="distill_loss",
        shape=lambda inputs: f"BT={inputs[0].shape[0]} H={inputs[0].shape[1]} V={inputs[1].shape[0]} fp32",
        make_inputs=partial(_linear_inputs, rows, vocab, hidden),
        prepare=_linear_prepare,
        baseline=_linear_naive,
        candidate=_linear_fused,
        check=_linear_check,
        baseline_name="naive matmul+kl_div+autograd",
        targets=Targets(max_mem_ratio=0.03125),
        unavoidable_bytes=lambda inputs: sum(x.numel() * x.element_size() for x in inputs[:2]),
        quick=quick,
    )


CASES = [
    _logits_case(1024, 32000, quick=True),
    _logits_case(4096, 32000, quick=False),
    _linear_case(1024, 128000, 512, quick=True),
]
