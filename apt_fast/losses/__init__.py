"""Distillation losses built on apt_fast::distill_loss_fwd: the validated settings (config.py), the lm_head-fused
loss over vocabulary blocks (fused_linear.py) and the chunked / sparse-teacher autograd.Functions (chunked.py)."""

from .chunked import FusedLinearDistillLoss, SparseTeacherDistillLoss, densify_topk_teacher
from .config import DistillLossConfig

__all__ = ["DistillLossConfig", "FusedLinearDistillLoss", "SparseTeacherDistillLoss", "densify_topk_teacher"]
