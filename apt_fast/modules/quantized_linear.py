"""Int8Linear and Fp8Linear: drop-in nn.Linear replacements with 8-bit weights, and QuantizedEmbedding, the input
embedding that shares a quantized output projection's weights (a tied embedding).

The weights live in the layout of the module's device: the CPU kernels' packed panels when apt_fast._C is built
(packed once, here), row-major otherwise. The state_dict always holds the row-major layout, the same on every
machine: ``qweight`` [out, in] (int8, or float8_e4m3fn / float8_e5m2), ``scales`` [out, in / group_size] fp32 and
``bias``. Weights are frozen (no gradient); gradients flow to the inputs and the bias.
"""

from __future__ import annotations

from typing import Optional, Tuple

import torch
from torch import Tensor, nn

from .. import _native
from ..autograd.quantized_linear import Fp8LinearFunction, Int8LinearFunction
from ..reference import quantized_linear as ref

INT8_SCHEMES = {8: "int8_dynamic", 16: "int8_weight_only"}


def _packs_on(device: torch.device) -> bool:
    return device.type == "cpu" and _native.is_available()


def _direct_kernel(op: str, x: Tensor, weight: Tensor, *params: Optional[Tensor]):
    """The native CPU kernel of apt_fast::<op> to call directly, or None to go through the op.

    A call that needs no gradient and is not being traced (inference, generation) skips the torch.library
    dispatch and the autograd.Function, about 40 us a call: a tenth of a 4096 x 4096 GEMV. The kernel is the
    one the op would run (with the same argument check), so the numbers are the same."""
    from ..backends import registry

    if (x.device.type != "cpu" or weight.dim() != 1 or torch.compiler.is_compiling()
            or registry.REGISTERED.get(op, {}).get("CPU") != "native"):
        return None
    if torch.is_grad_enabled() and (x.requires_grad or any(p is not None and p.requires_grad for p in params)):
        return None
    from ..backends.cpu import quantized_linear as cpu_kernels

    return getattr(cpu_kernels, op)


class QuantizedLinear(nn.Module):
    """What Int8Linear and Fp8Linear share: the quantized weight in its device's layout, the state_dict in the
    row-major one, and the bias. Subclasses say how to pack and run."""

    weight_format: int  # ref.INT8_CODE, or an FP8 format code
    qweight_dtype: torch.dtype

    def __init__(self, in_features: int, out_features: int, bias: bool, group_size: Optional[int]):
        super().__init__()
        group_size = in_features if group_size is None else int(group_size)
        if group_size < 1 or in_features % group_size != 0:
            raise ValueError(f"group_size must divide in_features {in_features}, got {group_size}")
        self.in_features, self.out_features, self.group_size = in_features, out_features, group_size
        self.bias = nn.Parameter(torch.zeros(out_features)) if bias else None
        groups = in_features // group_size
        self.register_buffer("weight", torch.zeros(out_features, in_features, dtype=torch.uint8), persistent=False)
        self.register_buffer("scales", torch.ones(out_features, groups), persistent=False)

    # --- layouts ---------------------------------------------------------------------------------------------

    @property
    def is_packed(self) -> bool:
        return self.weight.dim() == 1

    def _pack(self, q: Tensor, scales: Tensor) -> None:  # row-major -> the packed buffers
        raise NotImplementedError

    def _row_major_weight(self) -> Tensor:  # the packed weight as [out, in]
        raise NotImplementedError

    def set_quantized(self, q: Tensor, scales: Tensor) -> None:
        """Adopt row-major quantized weights (q [out, in], scales [out, groups]) in this device's layout."""
        expected = (self.out_features, self.in_features)
        if tuple(q.shape) != expected or q.dtype != self.qweight_dtype:
            raise ValueError(f"qweight must be {self.qweight_dtype} of shape {list(expected)}, got {q.dtype} "
                             f"{tuple(q.shape)}")
        groups = self.in_features // self.group_size
        if tuple(scales.shape) != (self.out_features, groups):
            raise ValueError(f"scales must have shape [{self.out_features}, {groups}] (group_size {self.group_size}), "
                             f"got {tuple(scales.shape)}")
        device, scales = self.scales.device, scales.to(torch.float32)
        if _packs_on(device):
            self._pack(q.cpu(), scales.cpu())
        else:
            self.weight = q.to(device).view(torch.int8 if self.weight_format == ref.INT8_CODE else torch.uint8)
            self.scales = scales.to(device).contiguous()

    def quantized(self) -> Tuple[Tensor, Tensor]:
        """(qweight [out, in], scales [out, groups]) in the row-major layout."""
        if not self.is_packed:
            return self.weight.view(self.qweight_dtype), self.scales
        return self._row_major_weight().view(self.qweight_dtype), ref.unpack_scales(self.scales, self.out_features)

    def dequantized(self) -> Tensor:
        """The fp32 weight [out, in] these codes and scales stand for."""
        q, scales = self.quantized()
        return ref.dequantize(q, scales, self.weight_format)

    def _apply(self, fn, recurse=True):
        q, scales = self.quantized()
        q, scales = q.clone(), scales.clone()
        super()._apply(fn, recurse)
        self.scales = self.scales.float()  # a dtype cast (model.half()) leaves the scales fp32
        self.set_quantized(q.to(self.scales.device), scales.to(self.scales.device))
        return self

    # --- state_dict: row-major ---------------------------------------------------------------------------------

    def _save_to_state_dict(self, destination, prefix, keep_vars):
        super()._save_to_state_dict(destination, prefix, keep_vars)
        q, scales = self.quantized()
        destination[prefix + "qweight"] = q.detach().clone() if self.is_packed else q.detach()
        destination[prefix + "scales"] = scales.detach().clone() if self.is_packed else scales.detach()

    def _load_from_state_dict(self, state_dict, prefix, local_metadata, strict, missing_keys, unexpected_keys,
                              error_msgs):
        present = [prefix + name in state_dict for name in ("qweight", "scales")]
        if all(present):
            try:
                self.set_quantized(state_dict[prefix + "qweight"], state_dict[prefix + "scales"])
            except ValueError as error:
                error_msgs.append(f"{prefix}qweight / scales: {error}")
        else:
            missing_keys.extend(prefix + name for name, here in zip(("qweight", "scales"), present) if not here)
        rest = {k: v for k, v in state_dict.items() if k not in (prefix + "qweight", prefix + "scales")}
        super()._load_from_state_dict(rest, prefix, local_metadata, strict, missing_keys, unexpected_keys, error_msgs)

    def _bias(self) -> Optional[Tensor]:
        return None if self.bias is None else self.bias.float()

    def weight_bytes(self) -> int:
        """Bytes of the quantized weight and its scales (what replaces in * out fp32 values)."""
        return self.in_features * self.out_features + self.scales.numel() * 4

    def extra_repr(self) -> str:
        layout = "packed panels" if self.is_packed else "row-major"
        return (f"in_features={self.in_features}, out_features={self.out_features}, bias={self.bias is not None}, "
                f"group_size={self.group_size}, {layout}")


class Int8Linear(QuantizedLinear):
    """nn.Linear with int8 weights (symmetric, per output channel or per group of inputs). activation_bits=8:
    W8A8 dynamic, the activations quantized per row to int8 inside the kernel; 16: weight-only, the activations
    taken as 16-bit fixed point per row (two int8 halves), finer than bf16."""

    weight_format = ref.INT8_CODE
    qweight_dtype = torch.int8

    def __init__(self, in_features: int, out_features: int, bias: bool = True, *, group_size: Optional[int] = None,
                 activation_bits: int = 8):
        if activation_bits not in INT8_SCHEMES:
            raise ValueError(f"activation_bits must be 8 (W8A8 dynamic) or 16 (weight-only), got {activation_bits}")
        super().__init__(in_features, out_features, bias, group_size)
        self.activation_bits = activation_bits
        self.register_buffer("compensation", torch.empty(0, dtype=torch.int32), persistent=False)
        self.weight = self.weight.view(torch.int8)

    @classmethod
    def from_linear(cls, linear: nn.Linear, *, group_size: Optional[int] = None,
                    activation_bits: int = 8) -> "Int8Linear":
        module = cls(linear.in_features, linear.out_features, linear.bias is not None, group_size=group_size,
                     activation_bits=activation_bits).to(linear.weight.device)
        q, scales = ref.quantize_int8_weight(linear.weight.detach(), module.group_size)
        module.set_quantized(q, scales)
        if linear.bias is not None:
            module.bias.data.copy_(linear.bias.detach().float())
        return module

    def _pack(self, q: Tensor, scales: Tensor) -> None:
        from ..backends.cpu.panels import pack_int8

        self.weight, self.compensation, self.scales = pack_int8(q, scales, self.group_size)

    def _row_major_weight(self) -> Tensor:
        return ref.unpack_int8_panels(self.weight, self.out_features, self.in_features)

    def forward(self, x: Tensor) -> Tensor:
        args = (x, self.weight, self.compensation, self.scales, self._bias(), self.out_features, self.group_size,
                self.activation_bits)
        kernel = _direct_kernel("int8_linear", x, self.weight, self.bias)
        return kernel(*args) if kernel is not None else Int8LinearFunction.apply(*args)

    @property
    def scheme(self) -> str:
        return INT8_SCHEMES[self.activation_bits]

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, activation_bits={self.activation_bits}"


class Fp8Linear(QuantizedLinear):
    """nn.Linear with FP8 weights (e4m3fn or e5m2; a scale per tensor, per output channel or per block of 128
    inputs), weight-only: activations rounded to bf16, products exact, sums in fp32."""

    def __init__(self, in_features: int, out_features: int, bias: bool = True, *, fp8_format: str = "e4m3",
                 group_size: Optional[int] = None):
        if fp8_format not in ref.FP8_FORMATS:
            raise ValueError(f"fp8_format must be 'e4m3' or 'e5m2', got {fp8_format!r}")
        super().__init__(in_features, out_features, bias, group_size)
        self.fp8_format = fp8_format
        self.weight_format, self.qweight_dtype = ref.FP8_FORMATS[fp8_format][:2]

    @classmethod
    def from_linear(cls, linear: nn.Linear, *, fp8_format: str = "e4m3", group_size: Optional[int] = None,
                    per_tensor: bool = False) -> "Fp8Linear":
        module = cls(linear.in_features, linear.out_features, linear.bias is not None, fp8_format=fp8_format,
                     group_size=group_size).to(linear.weight.device)
        codes, scales = fp8_quantize_weight(linear.weight.detach(), module.weight_format, module.group_size,
                                            per_tensor)
        module.set_quantized(codes.view(module.qweight_dtype), scales)
        if linear.bias is not None:
            module.bias.data.copy_(linear.bias.detach().float())
        return module

    def _pack(self, q: Tensor, scales: Tensor) -> None:
        from ..backends.cpu.panels import pack_fp8

        self.weight, self.scales = pack_fp8(q.view(torch.uint8), scales, self.group_size)

    def _row_major_weight(self) -> Tensor:
        return ref.unpack_code_panels(self.weight, self.out_features, self.in_features)

    def forward(self, x: Tensor) -> Tensor:
        args = (x, self.weight, self.scales, self._bias(), self.out_features, self.group_size, self.weight_format)
        kernel = _direct_kernel("fp8_linear", x, self.weight, self.bias)
        return kernel(*args) if kernel is not None else Fp8LinearFunction.apply(*args)

    @property
    def scheme(self) -> str:
        return f"fp8_{self.fp8_format}_weight_only"

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, fp8_format={self.fp8_format}"


def fp8_quantize_weight(w: Tensor, fp8_format: int, group_size: int, per_tensor: bool) -> Tuple[Tensor, Tensor]:
    """w [out, in] -> (codes [out, in] uint8, scales [out, groups]): scale = amax / largest code per group (or one
    for the whole tensor), codes by apt_fast::fp8_quantize (saturating: the scale keeps every value in range)."""
    largest = ref.FP8_FORMATS[ref.FP8_CODES[fp8_format]][2]
    amax = ref.group_amax(w, group_size)
    if per_tensor:
        amax = amax.max().expand_as(amax).contiguous()
    scales = torch.where(amax > 0, amax / largest, torch.ones_like(amax))
    return torch.ops.apt_fast.fp8_quantize(w.float(), scales, fp8_format, True), scales


class QuantizedEmbedding(nn.Module):
    """The input embedding of a model whose output projection is tied to it and quantized: token ids look up rows
    of that projection's weight, dequantized. It holds no state of its own (the projection's state_dict has it)."""

    def __init__(self, projection: QuantizedLinear, padding_idx: Optional[int] = None):
        super().__init__()
        self.__dict__["projection"] = projection  # shared, deliberately not a submodule (no second copy saved)
        self.padding_idx = padding_idx
        self.num_embeddings, self.embedding_dim = projection.out_features, projection.in_features

    def forward(self, ids: Tensor) -> Tensor:  # ids [...] int64 -> [..., D] fp32
        p = self.projection
        flat = ids.reshape(-1)
        if p.is_packed:
            from ..backends.cpu.panels import dequantize_rows

            rows = dequantize_rows(p.weight, p.scales, flat, p.out_features, p.in_features, p.group_size,
                                   p.weight_format)
        else:
            q, scales = p.quantized()
            rows = ref.dequantize(q[flat], scales[flat], p.weight_format)
        return rows.reshape(*ids.shape, p.in_features)

    def extra_repr(self) -> str:
        return f"{self.num_embeddings}, {self.embedding_dim}, tied to a {type(self.projection).__name__}"
