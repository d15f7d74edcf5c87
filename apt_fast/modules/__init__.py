"""Drop-in nn.Modules backed by apt_fast's ops."""

from .apt_attention import FusedAPTAttention
from .distillation_loss import DistillationLoss
from .layer_fusions import FusedPostLNDecoderLayer, FusedPostLNEncoderLayer
from .quantized_linear import Fp8Linear, Int8Linear, QuantizedEmbedding, QuantizedLinear
from .sparse_linear import SparseEmbedding, SparseLinear

__all__ = ["DistillationLoss", "Fp8Linear", "FusedAPTAttention", "FusedPostLNDecoderLayer",
           "FusedPostLNEncoderLayer", "Int8Linear", "QuantizedEmbedding", "QuantizedLinear",
           "SparseEmbedding", "SparseLinear"]
