"""SparseLinear: a drop-in nn.Linear whose weight is held in a sparse format (apt_fast.sparsity.formats: bitmap,
N:M or block-CSR), and SparseEmbedding, the input embedding tied to a sparse output projection.

The kept weights are the Parameter ``values`` (fp32 or bf16 train; int8 values are frozen); the format's other
tensors (bitmap, row_offsets, indices, scales, block offsets and columns) are persistent buffers, so the
state_dict holds ``<path>.values``, ``<path>.<structure>`` and ``<path>.bias``. The forward and backward run
through the format's ``linear``: gradients reach x through the sparse weight and ``values`` only at the kept
entries, so training keeps the sparsity by construction.

A :class:`Route` (set by apt_fast.sparsify's dispatcher) may send the calls of some row counts M to the dense
F.linear where that is faster; the layer then keeps a dense copy of its weight (a non-persistent buffer, rebuilt
when the values change). Calls that need gradients take the dense path through the format's differentiable
``to_dense(values)``, so dW is still masked.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Dict, Optional, Tuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..sparsity.formats import FORMATS, SparseWeight, pack

FLOAT_VALUE_DTYPES = (torch.float32, torch.bfloat16)


@dataclass(frozen=True)
class Route:
    """Which path serves a call of M rows: ``buckets`` ascending row counts, ``dense[i]`` True where the dense
    F.linear serves bucket i. A call of M rows belongs to the first bucket >= M (the last beyond it), so a
    bucket's decision covers the row counts up to it from the previous one."""

    buckets: Tuple[int, ...] = (1,)
    dense: Tuple[bool, ...] = (False,)

    def __post_init__(self) -> None:
        buckets, dense = tuple(self.buckets), tuple(self.dense)
        if not buckets or any(isinstance(b, bool) or not isinstance(b, int) or b < 1 for b in buckets) \
                or list(buckets) != sorted(set(buckets)):
            raise ValueError(f"buckets must be ascending distinct row counts >= 1, got {self.buckets!r}")
        if len(dense) != len(buckets) or not all(isinstance(d, bool) for d in dense):
            raise ValueError(f"dense must hold one bool per bucket ({len(buckets)}), got {self.dense!r}")
        object.__setattr__(self, "buckets", buckets)
        object.__setattr__(self, "dense", dense)

    def dense_at(self, rows: int) -> bool:
        for bucket, dense in zip(self.buckets, self.dense):
            if rows <= bucket:
                return dense
        return self.dense[-1]

    @property
    def needs_dense_copy(self) -> bool:
        return any(self.dense)

    @property
    def dense_buckets(self) -> Tuple[int, ...]:
        return tuple(b for b, d in zip(self.buckets, self.dense) if d)

    def describe(self) -> str:
        """'sparse', 'dense', or e.g. 'sparse at M<=8, dense at M=64, 256'."""
        if not self.needs_dense_copy:
            return "sparse"
        if all(self.dense):
            return "dense"
        sparse = [b for b, d in zip(self.buckets, self.dense) if not d]
        return (f"sparse at M={', '.join(map(str, sparse))}, dense at M={', '.join(map(str, self.dense_buckets))}"
                f" (M up to each)")


def _layout(weight: SparseWeight) -> Tuple[Dict[str, Tensor], Dict[str, object]]:
    """(structure tensors by name, the format's other fields: n, m, block, a None scales, ...)."""
    structure = weight.structure()
    others = {f.name: getattr(weight, f.name) for f in fields(weight)
              if f.name not in ("out_features", "in_features", "values") and f.name not in structure}
    return structure, others


class SparseLinear(nn.Module):
    """nn.Linear with a sparse weight: y = x . W^T + bias where W [out_features, in_features] is ``weight``
    (a SparseWeight of any registered format). ``dense_dtype`` is the dtype of the dense path's weight copy (the
    original layer's); ``route`` the dispatcher's choice of path by row count (default: always sparse)."""

    def __init__(self, weight: SparseWeight, bias: Optional[Tensor] = None, *, route: Optional[Route] = None,
                 dense_dtype: torch.dtype = torch.float32):
        super().__init__()
        if not isinstance(weight, SparseWeight):
            raise ValueError(f"weight must be a SparseWeight (apt_fast.sparsity.formats.pack), got "
                             f"{type(weight).__name__}")
        if bias is not None and tuple(bias.shape) != (weight.out_features,):
            raise ValueError(f"bias must have shape ({weight.out_features},), got {tuple(bias.shape)}")
        if dense_dtype not in FLOAT_VALUE_DTYPES:
            raise ValueError(f"dense_dtype must be torch.float32 or torch.bfloat16, got {dense_dtype}")
        self.in_features, self.out_features = weight.in_features, weight.out_features
        self.format = weight.format_name
        self.dense_dtype = dense_dtype
        self.route = route if route is not None else Route()
        self.values = nn.Parameter(weight.values.detach(), requires_grad=weight.values.is_floating_point())
        structure, self._fields = _layout(weight)
        for name, tensor in structure.items():
            self.register_buffer(name, tensor)
        if bias is None:
            self.register_parameter("bias", None)
        else:
            self.bias = bias if isinstance(bias, nn.Parameter) else nn.Parameter(bias.detach())
        self.register_buffer("dense_weight", None, persistent=False)
        self._dense_version = -1
        self._refresh()

    @classmethod
    def from_linear(cls, linear: nn.Linear, mask: Optional[Tensor] = None, format: str = "bitmap",
                    dtype: Optional[torch.dtype] = None, *, route: Optional[Route] = None,
                    **options) -> "SparseLinear":
        """``linear`` with its weight packed in ``format`` (options: n, m for "nm"; block for "block"). ``mask``
        [out, in] bool: the weights to keep (default: the pruning mask ``weight_mask`` if the layer has one, else
        the nonzero weights); ``dtype``: the values' dtype (default the weight's: fp32 or bf16; int8 quantizes them
        per output channel). The layer's bias Parameter is reused."""
        if not isinstance(linear, nn.Linear):
            raise ValueError(f"linear must be an nn.Linear, got {type(linear).__name__}")
        weight = linear.weight.detach()
        if mask is None:
            mask = linear._buffers.get("weight_mask")
            mask = weight != 0 if mask is None else mask
        dense_dtype = weight.dtype if weight.dtype in FLOAT_VALUE_DTYPES else torch.float32
        dtype = dense_dtype if dtype is None else dtype
        sparse = pack(weight, mask, format, dtype, **options)
        module = cls(sparse, linear.bias, route=route, dense_dtype=dense_dtype)
        module.train(linear.training)
        return module

    # --- the SparseWeight behind the module ----------------------------------------------------------------

    def _refresh(self) -> None:
        """Rebuild the SparseWeight from the module's tensors (after they were moved, cast or loaded), and the
        dense copy when the route needs one."""
        structure = {name: self._buffers[name] for name in self.structure_names}
        self._sparse = FORMATS[self.format](self.out_features, self.in_features, self.values, **structure,
                                            **self._fields)
        self.dense_weight = None
        self._dense_version = -1
        if self.route.needs_dense_copy:
            self.dense()

    @property
    def structure_names(self) -> Tuple[str, ...]:
        return tuple(name for name in self._buffers if name != "dense_weight")

    @property
    def sparse_weight(self) -> SparseWeight:
        """The weight in its sparse format (sharing this module's tensors)."""
        return self._sparse

    def options(self) -> dict:
        """The format's JSON-able description: {"format", "dtype", and n, m or block}."""
        return self._sparse.options()

    def mask(self) -> Tensor:
        """[out, in] bool: True where a weight is kept."""
        return self._sparse.mask()

    @property
    def sparsity(self) -> float:
        """The fraction of the weight's entries the format does not keep."""
        return 1.0 - float(self.mask().sum()) / (self.out_features * self.in_features)

    def to_dense(self) -> Tensor:
        """The weight [out, in] as a dense fp32 tensor (zeros where pruned, int8 values dequantized)."""
        return self._sparse.to_dense(self.values.detach())

    def dense(self) -> Tensor:
        """The dense copy [out, in] in ``dense_dtype`` that the dense path multiplies by (built on first use, and
        again after the values changed, e.g. by an optimizer step)."""
        if self.dense_weight is None or self._dense_version != self.values._version:
            with torch.no_grad():
                self.dense_weight = self.to_dense().to(self.dense_dtype)
            self._dense_version = self.values._version
        return self.dense_weight

    def weight_bytes(self) -> int:
        """Bytes of the sparse weight (values and structure)."""
        return self._sparse.nbytes()

    def dense_copy_bytes(self) -> int:
        """Bytes of the dense copy the route keeps (0 when it keeps none)."""
        size = torch.empty(0, dtype=self.dense_dtype).element_size()
        return self.out_features * self.in_features * size if self.route.needs_dense_copy else 0

    def set_route(self, route: Route) -> None:
        """Route each row count to the sparse or the dense path; the dense copy is kept only when some bucket
        needs it."""
        self.route = route
        self._refresh()

    def to_linear(self) -> nn.Linear:
        """An nn.Linear with this layer's weight (dense, zeros where pruned, in ``dense_dtype``) and bias."""
        linear = nn.Linear(self.in_features, self.out_features, bias=self.bias is not None,
                           device=self.values.device, dtype=self.dense_dtype)
        with torch.no_grad():
            linear.weight.copy_(self.to_dense())
            if self.bias is not None:
                linear.bias.copy_(self.bias)
        return linear.train(self.training)

    # --- forward -----------------------------------------------------------------------------------------

    def _bias_for(self, x: Tensor) -> Optional[Tensor]:
        return None if self.bias is None or self.bias.dtype == x.dtype else self.bias.to(x.dtype)

    def forward(self, x: Tensor) -> Tensor:  # [..., in] -> [..., out]
        rows = x.numel() // max(x.shape[-1], 1)
        if not self.route.dense_at(rows):
            return self._sparse.linear(x, self.values, self.bias)
        if torch.is_grad_enabled() and self.values.requires_grad:
            weight = self._sparse.to_dense(self.values).to(x.dtype)  # differentiable: dW reaches kept values only
        else:
            weight = self.dense().to(x.dtype)
        bias = self._bias_for(x)
        return F.linear(x, weight, self.bias if bias is None else bias)

    # --- device / dtype moves and the state_dict ------------------------------------------------------------

    def _apply(self, fn, recurse=True):
        structure_dtypes = {name: self._buffers[name].dtype for name in self.structure_names}
        values_dtype = self.values.dtype
        super()._apply(fn, recurse)
        for name, dtype in structure_dtypes.items():  # scales stay fp32, offsets int64, ...: the kernels' dtypes
            self._buffers[name] = self._buffers[name].to(dtype)
        if self.values.dtype not in (*FLOAT_VALUE_DTYPES, torch.int8):  # model.half(): no fp16 sparse kernels
            self.values.data = self.values.data.to(values_dtype)
        cast = fn(torch.empty(0, dtype=self.dense_dtype))
        if cast.dtype in FLOAT_VALUE_DTYPES:
            self.dense_dtype = cast.dtype
        self._refresh()
        return self

    def _load_from_state_dict(self, state_dict, prefix, local_metadata, strict, missing_keys, unexpected_keys,
                              error_msgs):
        names = ("values", *self.structure_names)
        keys = {name: prefix + name for name in names}
        given = {name: state_dict[key] for name, key in keys.items() if key in state_dict}
        if len(given) == len(names):
            try:
                weight = FORMATS[self.format].from_state(
                    self.out_features, self.in_features, {**self.options(), "dtype": _dtype_name(given["values"])},
                    given["values"], {name: given[name] for name in self.structure_names})
            except ValueError as error:
                error_msgs.append(f"{prefix.rstrip('.') or '<root>'}: {error}")
            else:
                self.adopt(weight)
        elif strict:
            missing_keys.extend(key for name, key in keys.items() if name not in given)
        rest = {k: v for k, v in state_dict.items() if k not in keys.values()}
        inner_missing: list = []
        super()._load_from_state_dict(rest, prefix, local_metadata, strict, inner_missing, unexpected_keys,
                                      error_msgs)
        missing_keys.extend(key for key in inner_missing if key not in keys.values())

    def adopt(self, weight: SparseWeight) -> None:
        """Take ``weight``'s tensors (same format and shape; another sparsity pattern or values dtype is fine),
        copying into the existing ``values`` Parameter when the shape and dtype allow (optimizers keep it)."""
        if weight.format_name != self.format or (weight.out_features, weight.in_features) != \
                (self.out_features, self.in_features):
            raise ValueError(f"weight must be a {self.format} weight of shape ({self.out_features}, "
                             f"{self.in_features}), got {weight.format_name} ({weight.out_features}, "
                             f"{weight.in_features})")
        values = weight.values.detach().to(self.values.device)
        with torch.no_grad():
            if values.shape == self.values.shape and values.dtype == self.values.dtype:
                self.values.copy_(values)
            else:
                self.values = nn.Parameter(values.clone(), requires_grad=values.is_floating_point())
        structure, self._fields = _layout(weight)
        for name, tensor in structure.items():
            self._buffers[name] = tensor.to(self.values.device)
        for name in set(self.structure_names) - set(structure):
            del self._buffers[name]
        self._refresh()

    def extra_repr(self) -> str:
        options = ", ".join(f"{k}={v}" for k, v in self.options().items() if k not in ("format", "dtype"))
        return (f"in_features={self.in_features}, out_features={self.out_features}, bias={self.bias is not None}, "
                f"format={self.format}{f' ({options})' if options else ''}, dtype={_dtype_name(self.values)}, "
                f"sparsity={100 * self.sparsity:.1f}%, route={self.route.describe()}")


def _dtype_name(tensor: Tensor) -> str:
    return str(tensor.dtype).replace("torch.", "")


class SparseEmbedding(nn.Module):
    """The input embedding of a model whose output projection is tied to it and sparse: token ids look up rows of
    that projection's weight (from its dense copy, which the projection then keeps). It holds no state of its own
    (the projection's state_dict has it)."""

    def __init__(self, projection: SparseLinear, padding_idx: Optional[int] = None):
        super().__init__()
        self.__dict__["projection"] = projection  # shared, deliberately not a submodule (no second copy saved)
        self.padding_idx = padding_idx
        self.num_embeddings, self.embedding_dim = projection.out_features, projection.in_features

    def forward(self, ids: Tensor) -> Tensor:  # ids [...] int64 -> [..., D] in the projection's dense dtype
        p = self.projection
        if torch.is_grad_enabled() and p.values.requires_grad:
            return F.embedding(ids, p.sparse_weight.to_dense(p.values).to(p.dense_dtype), self.padding_idx)
        return F.embedding(ids, p.dense(), self.padding_idx)

    def dense_bytes(self) -> int:
        """Bytes of the projection's dense copy that the lookups read."""
        size = torch.empty(0, dtype=self.projection.dense_dtype).element_size()
        return self.num_embeddings * self.embedding_dim * size

    def extra_repr(self) -> str:
        return f"{self.num_embeddings}, {self.embedding_dim}, tied to a SparseLinear ({self.projection.format})"
