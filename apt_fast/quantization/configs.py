"""The quantization schemes, as frozen dataclasses validated on construction; each knows the module it swaps in
for an nn.Linear and how it is recorded in a model's config.json (``quantization_config``)."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Optional

from torch import nn

from ..modules.quantized_linear import Fp8Linear, Int8Linear, QuantizedLinear

GROUP_SIZES = (32, 64, 128)
FP8_GRANULARITIES = ("tensor", "row", "block")
FP8_BLOCK = 128  # inputs per scale with granularity="block" (1 x 128 blocks)


def _check_group_size(group_size: Optional[int]) -> None:
    if group_size is not None and group_size not in GROUP_SIZES:
        raise ValueError(f"group_size must be None (one scale per output channel) or one of "
                         f"{', '.join(map(str, GROUP_SIZES))}, got {group_size!r}")


@dataclass(frozen=True)
class _Int8Config:
    group_size: Optional[int] = None
    scheme = ""
    activation_bits = 8

    def __post_init__(self) -> None:
        _check_group_size(self.group_size)

    def group_for(self, linear: nn.Linear) -> Optional[int]:
        return self.group_size

    def convert(self, linear: nn.Linear) -> QuantizedLinear:
        return Int8Linear.from_linear(linear, group_size=self.group_size, activation_bits=self.activation_bits)

    def empty(self, in_features: int, out_features: int, bias: bool) -> QuantizedLinear:
        return Int8Linear(in_features, out_features, bias, group_size=self.group_size,
                          activation_bits=self.activation_bits)


@dataclass(frozen=True)
class Int8DynamicConfig(_Int8Config):
    """W8A8 dynamic: int8 weights (per output channel, or per group of 32/64/128 inputs), activations quantized
    per row to int8 inside the kernel."""

    scheme = "int8_dynamic"
    activation_bits = 8


@dataclass(frozen=True)
class Int8WeightOnlyConfig(_Int8Config):
    """Weight-only int8: int8 weights, fp32 / bf16 activations (taken as 16-bit fixed point per row inside the
    kernel)."""

    scheme = "int8_weight_only"
    activation_bits = 16


@dataclass(frozen=True)
class Fp8WeightOnlyConfig:
    """Weight-only FP8 (e4m3fn or e5m2) with one scale per tensor, per output channel ("row") or per 1 x 128
    block of inputs; activations rounded to bf16. Values the scale cannot keep in range saturate (the scales are
    amax / the largest code, so weights never overflow)."""

    format: str = "e4m3"
    granularity: str = "row"
    scheme = "fp8_weight_only"

    def __post_init__(self) -> None:
        if self.format not in ("e4m3", "e5m2"):
            raise ValueError(f"format must be 'e4m3' or 'e5m2', got {self.format!r}")
        if self.granularity not in FP8_GRANULARITIES:
            raise ValueError(f"granularity must be one of {', '.join(map(repr, FP8_GRANULARITIES))}, got "
                             f"{self.granularity!r}")

    def group_for(self, linear: nn.Linear) -> Optional[int]:
        return FP8_BLOCK if self.granularity == "block" else None

    def convert(self, linear: nn.Linear) -> QuantizedLinear:
        return Fp8Linear.from_linear(linear, fp8_format=self.format, group_size=self.group_for(linear),
                                     per_tensor=self.granularity == "tensor")

    def empty(self, in_features: int, out_features: int, bias: bool) -> QuantizedLinear:
        group = FP8_BLOCK if self.granularity == "block" else None
        return Fp8Linear(in_features, out_features, bias, fp8_format=self.format, group_size=group)


CONFIGS = (Int8DynamicConfig, Int8WeightOnlyConfig, Fp8WeightOnlyConfig)


def config_to_dict(config) -> dict:
    return {"quant_method": "apt_fast", "scheme": config.scheme, **asdict(config)}


def config_from_dict(data: dict):
    """The config a ``quantization_config`` entry of config.json describes; ValueError naming what is wrong."""
    if not isinstance(data, dict) or data.get("quant_method") != "apt_fast":
        raise ValueError(f"quantization_config must be an apt_fast one (quant_method 'apt_fast'), got {data!r}")
    by_scheme = {c.scheme: c for c in CONFIGS}
    scheme = data.get("scheme")
    if scheme not in by_scheme:
        raise ValueError(f"quantization_config scheme must be one of {', '.join(by_scheme)}, got {scheme!r}")
    fields = {k: v for k, v in data.items() if k not in ("quant_method", "scheme", "modules", "include_embedding")}
    try:
        return by_scheme[scheme](**fields)
    except TypeError as error:
        raise ValueError(f"quantization_config for {scheme} has unknown settings {sorted(fields)}: {error}") from None
