"""The base of every sparse weight format: a frozen dataclass holding a pruned weight W [N, K] (out_features,
in_features) as its kept values plus the tensors that say where they sit, and the registry that the formats fill
with the ``@sparse_format(name)`` decorator (one file per format, no shared table)."""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Callable, ClassVar, Dict, Iterable, Optional, Tuple, Type, TypeVar

import torch
from torch import Tensor

REGISTRY: Dict[str, Type["SparseWeight"]] = {}

Format = TypeVar("Format", bound=Type["SparseWeight"])


def sparse_format(name: str) -> Callable[[Format], Format]:
    """Class decorator: registers a SparseWeight subclass under ``name`` (its ``options()["format"]``)."""
    def register(cls: Format) -> Format:
        if name in REGISTRY:
            raise ValueError(f"sparse format {name!r} is already registered by {REGISTRY[name].__name__}")
        cls.format_name = name
        REGISTRY[name] = cls
        return cls
    return register


def dtype_name(dtype: torch.dtype) -> str:
    return str(dtype).replace("torch.", "")


def check_tensor(name: str, tensor: Tensor, shape: Tuple[int, ...], dtypes: Iterable[torch.dtype]) -> None:
    """A stored tensor of a format has the expected shape and one of the expected dtypes, else ValueError naming
    it, the expected and the given value."""
    dtypes = tuple(dtypes)
    if not isinstance(tensor, Tensor):
        raise ValueError(f"{name} must be a tensor of shape {shape}, got {type(tensor).__name__}")
    if tuple(tensor.shape) != tuple(shape):
        raise ValueError(f"{name} must have shape {tuple(shape)}, got {tuple(tensor.shape)}")
    if tensor.dtype not in dtypes:
        raise ValueError(f"{name} must be {' or '.join(map(dtype_name, dtypes))}, got {dtype_name(tensor.dtype)}")


def check_pack_arguments(weight: Tensor, mask: Tensor, dtype: torch.dtype, dtypes: Iterable[torch.dtype]) -> None:
    """weight [N, K] floating point, mask [N, K] bool on the same device, dtype one of ``dtypes``."""
    dtypes = tuple(dtypes)
    if weight.dim() != 2 or not weight.is_floating_point():
        raise ValueError(f"weight must be a 2-D floating-point tensor [out_features, in_features], got "
                         f"{dtype_name(weight.dtype)} of shape {tuple(weight.shape)}")
    if mask.dtype != torch.bool or tuple(mask.shape) != tuple(weight.shape):
        raise ValueError(f"mask must be bool of shape {tuple(weight.shape)} like weight, got "
                         f"{dtype_name(mask.dtype)} of shape {tuple(mask.shape)}")
    if mask.device != weight.device:
        raise ValueError(f"mask must be on {weight.device} like weight, got {mask.device}")
    if dtype not in dtypes:
        raise ValueError(f"dtype must be {' or '.join(map(dtype_name, dtypes))}, got {dtype_name(dtype)}")


@dataclass(frozen=True, eq=False)
class SparseWeight:
    """A pruned weight [out_features, in_features] in one sparse format. ``values`` holds the kept weights (what
    trains; int8 values are frozen); ``structure()`` the other tensors. Subclasses add those tensors as fields
    (``@dataclass(frozen=True, eq=False)``: tensors have no single truth value to compare by), register with
    ``@sparse_format(name)`` and implement the methods below."""

    out_features: int
    in_features: int
    values: Tensor

    format_name: ClassVar[str] = ""

    def structure(self) -> Dict[str, Tensor]:
        """The tensor fields besides ``values`` (bitmap, row_offsets, indices, scales, ...), by name; fields that are
        None or not tensors (a format's own options, such as n and m) are left out."""
        return {f.name: getattr(self, f.name) for f in fields(self)
                if f.name not in ("out_features", "in_features", "values")
                and isinstance(getattr(self, f.name), Tensor)}

    def options(self) -> dict:
        """JSON-able description: {"format": ..., "dtype": ...} plus the format's own options."""
        return {"format": self.format_name, "dtype": dtype_name(self.values.dtype)}

    @classmethod
    def pack(cls, weight: Tensor, mask: Tensor, dtype: torch.dtype, **options) -> "SparseWeight":
        """weight [N, K] and mask [N, K] bool -> the packed weight with values in ``dtype``."""
        raise NotImplementedError

    @classmethod
    def from_state(cls, out_features: int, in_features: int, options: dict, values: Tensor,
                   structure: Dict[str, Tensor]) -> "SparseWeight":
        """Rebuilds a weight from stored tensors, checking that shapes, dtypes and offsets agree (ValueError naming
        the tensor, the expected and the given value)."""
        raise NotImplementedError

    def mask(self) -> Tensor:
        """[N, K] bool: True where a weight is kept."""
        raise NotImplementedError

    def to_dense(self, values: Optional[Tensor] = None) -> Tensor:
        """[N, K] fp32 with zeros where pruned (int8 values dequantized); ``values`` replaces self.values."""
        raise NotImplementedError

    def linear(self, x: Tensor, values: Tensor, bias: Optional[Tensor]) -> Tensor:
        """y [..., N] = x [..., K] . W^T + bias through the format's autograd.Function (gradients to x, to
        ``values`` for the kept entries only, and to bias)."""
        raise NotImplementedError

    def nbytes(self) -> int:
        """Bytes of the values and the structure tensors."""
        tensors = [self.values, *self.structure().values()]
        return sum(t.numel() * t.element_size() for t in tensors)
