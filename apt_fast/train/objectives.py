"""Training objectives: what one batch costs. Each returns named terms ``(sum, count)``; the trainer's
loss is the sum over terms of ``sum / count`` with counts summed over all data-parallel processes, so
a multi-process step optimises exactly the one-process loss of the same global batch.

* :class:`LanguageModelObjective`: token cross-entropy of the decoder against the labels;
* :class:`DistillObjective`: the student against a frozen teacher (response, feature or combined).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..losses.config import DistillLossConfig
from ..validation import check_choice, check_in_range
from .batching import IGNORE_INDEX, Batch

Terms = dict[str, tuple[Tensor, Tensor]]  # name -> (sum [], count [])
DISTILL_TYPES = ("response", "feature", "combined")


def encode_decode(model: nn.Module, batch: Batch) -> tuple[Tensor, Tensor]:
    """(memory [B, S, D], decoder output [B, T, D]) of ``model`` on ``batch``: upstream's forward without
    the output projection (source padding masked, automatic causal decoder mask)."""
    memory = model.encode(batch.src, src_key_padding_mask=batch.src_padding)
    hidden = model.decode(batch.tgt_in, memory, memory_key_padding_mask=batch.src_padding)
    return memory, hidden


def token_count(batch: Batch) -> Tensor:  # [] int64
    return (batch.labels != IGNORE_INDEX).sum()


@dataclass(frozen=True)
class LanguageModelObjective:
    """Sum of the token cross-entropies (``label_smoothing`` as in F.cross_entropy), per target token."""

    label_smoothing: float = 0.0

    def __call__(self, model: nn.Module, batch: Batch) -> Terms:
        _, hidden = encode_decode(model, batch)
        logits = model.output_projection(hidden).float()  # [B, T, V]
        ce = F.cross_entropy(logits.flatten(0, 1), batch.labels.flatten(), ignore_index=IGNORE_INDEX,
                             reduction="sum", label_smoothing=self.label_smoothing)
        return {"ce": (ce, token_count(batch))}


@dataclass(frozen=True)
class DistillSettings:
    """Distillation settings (the plugin plan's defaults: T 4, alpha 0.7, beta 0.3).

    distill_type:
      'response' — per target token alpha * T^2 * KL(softmax(t/T) || softmax(s/T)) + beta * CE(s, label),
          averaged over the target tokens of the batch (not upstream's batchmean over [B, L, V], which grows
          with the length);
      'feature'  — beta * CE plus feature_weight * the feature loss: the MSE between the student's and the
          teacher's token-similarity matrices (cosine similarities of the encoder memory and of the decoder
          output, [T, T] per sample, padding excluded), which compares models of different widths;
      'combined' — response + feature_weight * feature loss (upstream's 0.1).
    """

    distill_type: str = "response"
    temperature: float = 4.0
    alpha: float = 0.7
    beta: float = 0.3
    feature_weight: float = 0.1

    def __post_init__(self) -> None:
        check_choice("distill_type", self.distill_type, DISTILL_TYPES)
        check_in_range("temperature", self.temperature, 0.0, float("inf"), low_open=True)
        check_in_range("alpha", self.alpha, 0.0, 1.0)
        check_in_range("beta", self.beta, 0.0, 1.0)
        check_in_range("feature_weight", self.feature_weight, 0.0, float("inf"))

    def loss_config(self) -> DistillLossConfig:
        return DistillLossConfig(temperature=self.temperature, alpha=self.alpha, beta=self.beta,
                                 ignore_index=IGNORE_INDEX, reduction="sum")


def response_loss_unfused(
    student_logits: Tensor,  # [N, V] fp32
    teacher_logits: Tensor,  # [N, V] fp32
    labels: Tensor,  # [N] int64, IGNORE_INDEX where ignored
    settings: DistillSettings,
) -> Tensor:  # [] sum over the non-ignored rows
    """The response loss in plain PyTorch (the ``--no-fast`` path and the fused kernel's check)."""
    t = settings.temperature
    live = labels != IGNORE_INDEX  # [N]
    log_ps = F.log_softmax(student_logits / t, dim=-1)  # [N, V]
    log_pt = F.log_softmax(teacher_logits / t, dim=-1)  # [N, V]
    kl = (log_pt.exp() * (log_pt - log_ps)).sum(-1)  # [N]
    ce = F.cross_entropy(student_logits, labels.clamp_min(0), reduction="none")  # [N]
    per_row = settings.alpha * t * t * kl + settings.beta * ce  # [N]
    return torch.where(live, per_row, torch.zeros_like(per_row)).sum()


def _similarity_mse(student: Tensor, teacher: Tensor, valid: Tensor) -> Tensor:
    """Per-sample MSE between cosine-similarity matrices, summed over samples.

    student [B, L, Ds], teacher [B, L, Dt], valid [B, L] bool -> [].
    """
    pair = (valid[:, :, None] & valid[:, None, :]).float()  # [B, L, L]
    s = F.normalize(student.float(), dim=-1)
    t = F.normalize(teacher.float(), dim=-1)
    diff = (s @ s.transpose(1, 2) - t @ t.transpose(1, 2)) * pair  # [B, L, L]
    return (diff.square().sum((1, 2)) / pair.sum((1, 2)).clamp_min(1.0)).sum()


class DistillObjective:
    """The student's loss against ``teacher`` (frozen: eval mode, no gradients) under ``settings``.

    ``fused`` uses apt_fast's fused linear distillation loss (the student's logits are never
    materialised); otherwise :func:`response_loss_unfused`. Teacher and student must share the vocabulary.
    """

    def __init__(self, teacher: nn.Module, settings: DistillSettings, *, fused: bool = True):
        self.teacher = teacher.eval().requires_grad_(False)
        self.settings = settings
        self.fused = fused

    def _response(self, student: nn.Module, hidden: Tensor, teacher_hidden: Tensor, batch: Batch) -> Tensor:
        # [N, V] in the autocast dtype (bf16 under --bf16): the fused loss reads it as it is, block by block
        teacher_logits = self.teacher.output_projection(teacher_hidden).flatten(0, 1)
        labels = batch.labels.flatten()  # [N]
        weight = student.output_projection.weight  # [V, D] fp32 master weight
        if self.fused:
            from ..functional import fused_linear_distill_loss

            # hidden in the weight's dtype (its gradient products need both alike); the student's logits are
            # formed block by block under the ambient autocast (bf16 under --bf16), never as one [N, V] tensor
            return fused_linear_distill_loss(hidden.to(weight.dtype).flatten(0, 1), weight, labels,
                                             teacher_logits=teacher_logits, config=self.settings.loss_config())
        student_logits = student.output_projection(hidden).float().flatten(0, 1)  # [N, V]
        return response_loss_unfused(student_logits, teacher_logits.float(), labels, self.settings)

    def __call__(self, model: nn.Module, batch: Batch) -> Terms:
        with torch.no_grad():
            teacher_memory, teacher_hidden = encode_decode(self.teacher, batch)
        memory, hidden = encode_decode(model, batch)
        tokens = token_count(batch)
        settings = self.settings
        terms: Terms = {}
        if settings.distill_type in ("response", "combined"):
            terms["distill"] = (self._response(model, hidden, teacher_hidden, batch), tokens)
        else:
            logits = model.output_projection(hidden).float()  # [B, T, V]
            ce = F.cross_entropy(logits.flatten(0, 1), batch.labels.flatten(), ignore_index=IGNORE_INDEX,
                                 reduction="sum")
            terms["ce"] = (settings.beta * ce, tokens)
        if settings.distill_type in ("feature", "combined"):
            feature = (_similarity_mse(memory, teacher_memory, ~batch.src_padding)
                       + _similarity_mse(hidden, teacher_hidden, batch.labels != IGNORE_INDEX)) / 2
            terms["feature"] = (settings.feature_weight * feature, torch.tensor(batch.src.shape[0]))
        return terms
