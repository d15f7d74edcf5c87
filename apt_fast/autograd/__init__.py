"""autograd.Functions of the ops, one module per op family. Only torch.ops.apt_fast.* run inside."""

from .distill_loss import DistillLossFunction
from .flash_attention import FlashAttentionFunction
from .apt_attention import AptAttentionFunction

__all__ = ["AptAttentionFunction", "DistillLossFunction", "FlashAttentionFunction"]
