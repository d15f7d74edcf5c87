"""autograd.Functions of the ops, one module per op family. Only torch.ops.apt_fast.* run inside."""

from .apt_attention import AptAttentionFunction
from .bitmap_linear import BitmapLinearFunction
from .block_linear import BlockLinearFunction
from .distill_loss import DistillLossFunction
from .flash_attention import FlashAttentionFunction
from .layer_fusions import AddLayerNormFunction, BiasGeluFunction
from .nm_linear import NMLinearFunction
from .quantized_linear import Fp8LinearFunction, Int8LinearFunction

__all__ = ["AddLayerNormFunction", "AptAttentionFunction", "BiasGeluFunction",
           "BitmapLinearFunction", "BlockLinearFunction", "DistillLossFunction",
           "FlashAttentionFunction", "Fp8LinearFunction", "Int8LinearFunction", "NMLinearFunction"]
