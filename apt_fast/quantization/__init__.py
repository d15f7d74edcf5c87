"""Quantization of nn.Linear layers to 8 bits: the schemes (configs.py), quantize(model, config) (quantize.py) and
per-layer accuracy (accuracy.py). The kernels are the apt_fast::int8_linear / fp8_linear ops."""

from .configs import Fp8WeightOnlyConfig, Int8DynamicConfig, Int8WeightOnlyConfig
from .quantize import QuantizeReport, quantize

__all__ = ["Fp8WeightOnlyConfig", "Int8DynamicConfig", "Int8WeightOnlyConfig", "QuantizeReport", "quantize"]
