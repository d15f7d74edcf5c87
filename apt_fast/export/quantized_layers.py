"""The quantized layers of a model (apt_fast.quantize, or Q8_0 weights loaded from GGUF) in a GGUF export.

Each quantized layer is exported as its nn.Linear weight would be (``<path>.weight``, the same GGUF name); a
QuantizedEmbedding is the weight of the output projection it is tied to (``token_embd.weight``). What is written:

* **q8_0**: an Int8Linear with group_size 32 is written as it is: its int8 codes unchanged, each scale as the
  block's fp16 d, which is exact for scales that are fp16 values (a model loaded from Q8_0 re-exports the same
  bytes) and otherwise their nearest fp16 (within 2^-11 relative, the rounding llama.cpp's own Q8_0 quantizer
  makes). Any other quantized layer (int8 per output channel or groups of 64 / 128, FP8) cannot be stored as
  Q8_0 without quantizing it again, so it is refused: ValueError naming the layer and what would work.
* every other type: the dequantized weight (codes x scales, float32), converted like any float weight.

A sparse layer (SparseLinear, apt_fast.sparsify) and a SparseEmbedding tied to one are written the same way, as
their dense weight (zeros where pruned, float32), converted like any float weight.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from ..gguf.q8_0 import q8_0_bytes
from ..gguf.tensor_types import BLOCK_SIZE, GGUFType
from ..modules.quantized_linear import Int8Linear, QuantizedEmbedding, QuantizedLinear
from ..modules.sparse_linear import SparseEmbedding, SparseLinear


def export_state(model: nn.Module) -> dict:
    """``model.state_dict()`` in its order, except that a quantized layer is ``<path>.weight``: the layer itself
    (its weight is read only when written) and its bias, a QuantizedEmbedding's weight is its projection, and a
    pruned layer's mask is left out (its weight is written dense, with the zeros)."""
    state = {}
    for path, module in model.named_modules():
        prefix = f"{path}." if path else ""
        if isinstance(module, (QuantizedLinear, SparseLinear)):
            state[prefix + "weight"] = module
            if module.bias is not None:
                state[prefix + "bias"] = module.bias.detach()
        elif isinstance(module, (QuantizedEmbedding, SparseEmbedding)):
            state[prefix + "weight"] = module.projection
        else:
            module._save_to_state_dict(state, prefix, keep_vars=False)
            state.pop(prefix + "weight_mask", None)  # apt_fast.pruning's mask: the weight holds the zeros already
    return state


def shape_of(source) -> tuple[int, ...]:
    if isinstance(source, (QuantizedLinear, SparseLinear)):
        return (source.out_features, source.in_features)
    return tuple(source.shape)


def layer_name(model: nn.Module, layer: QuantizedLinear) -> str:
    return next(path for path, module in model.named_modules() if module is layer)


def check_q8_0(model: nn.Module, layer: QuantizedLinear) -> None:
    """Refuse a quantized layer that q8_0 cannot store as it is (see the module's description)."""
    if isinstance(layer, Int8Linear) and layer.group_size == BLOCK_SIZE:
        return
    if isinstance(layer, Int8Linear):
        held = ("one scale per output channel" if layer.group_size == layer.in_features
                else f"one scale per {layer.group_size} inputs")
    else:
        held = f"{layer.fp8_format} FP8 codes"
    raise ValueError(f"export_gguf: {layer_name(model, layer)} is {type(layer).__name__} ({layer.scheme}) with {held}; "
                     f"q8_0 stores int8 codes with one scale per {BLOCK_SIZE} inputs, so it would have to quantize "
                     f"this layer again: quantize the float model with group_size {BLOCK_SIZE} instead (apt-fast "
                     f"quantize --scheme int8-weight-only --group-size {BLOCK_SIZE}), or export another type (f16, "
                     f"bf16, f32: the dequantized weights)")


def q8_0_data(model: nn.Module, layer: Int8Linear) -> np.ndarray:
    """The Q8_0 bytes of an Int8Linear of group size 32: its codes, and its scales as fp16."""
    codes, scales = (tensor.cpu() for tensor in layer.quantized())
    if not torch.isfinite(scales.to(torch.float16)).all():
        raise ValueError(f"export_gguf: {layer_name(model, layer)} has a scale of {scales.abs().max().item():g}, "
                         f"beyond fp16's range (65504), which q8_0 stores its scales in")
    return q8_0_bytes(codes, scales)


def float_weight(source) -> torch.Tensor:
    """The float tensor to convert: the tensor itself, a quantized layer's dequantized weight, or a sparse layer's
    dense one."""
    if isinstance(source, SparseLinear):
        return source.to_dense()
    return source.dequantized() if isinstance(source, QuantizedLinear) else source


def writes_as_is(source, qtype: GGUFType) -> bool:
    return isinstance(source, QuantizedLinear) and qtype.name == "q8_0"
