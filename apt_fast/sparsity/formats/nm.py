"""The N:M format: every group of m consecutive inputs of a row keeps exactly n weights (2:4 and 4:8 among them),
held as the kept values plus log2(m) bits of position each (layout and arithmetic: apt_fast.reference.nm_linear).
At 2:4 a row moves K / 2 values and K / 8 bytes of positions: 0.5625 of a dense bf16 row, 0.625 of a dense int8
one."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Dict, Optional

import torch
from torch import Tensor

from ...functional.nm_linear import nm_linear
from ...reference import nm_linear as ref
from .base import SparseWeight, check_pack_arguments, check_tensor, dtype_name, sparse_format

DTYPES = {dtype_name(dtype): dtype for dtype in ref.VALUE_DTYPES}


@sparse_format("nm")
@dataclass(frozen=True, eq=False)
class NMWeight(SparseWeight):
    indices: Tensor  # [N, ceil(K n / m * log2(m) / 8)] uint8
    scales: Optional[Tensor] = None  # [N] fp32, int8 values only
    n: int = 2
    m: int = 4

    def options(self) -> dict:
        return {**super().options(), "n": self.n, "m": self.m}

    @classmethod
    def pack(cls, weight: Tensor, mask: Tensor, dtype: torch.dtype = torch.float32, n: int = 2, m: int = 4,
             **options) -> "NMWeight":
        """weight [N, K] and a mask keeping at most n of every m consecutive inputs (K % m == 0)."""
        if options:
            raise ValueError(f"the nm format takes the options n and m, got {', '.join(sorted(options))}")
        check_pack_arguments(weight, mask, dtype, ref.VALUE_DTYPES)
        ref.check_pattern(n, m)
        ref.check_in_features(weight.shape[1], m)
        values, indices, scales = ref.pack(weight.detach(), mask, n, m, dtype)
        return cls(weight.shape[0], weight.shape[1], values, indices, scales, n, m)

    @classmethod
    def from_state(cls, out_features: int, in_features: int, options: dict, values: Tensor,
                   structure: Dict[str, Tensor]) -> "NMWeight":
        if options.get("format") != "nm":
            raise ValueError(f"options['format'] must be 'nm', got {options.get('format')!r}")
        if options.get("dtype") not in DTYPES:
            raise ValueError(f"options['dtype'] must be one of {', '.join(map(repr, DTYPES))}, got "
                             f"{options.get('dtype')!r}")
        n, m = options.get("n"), options.get("m")
        if not isinstance(n, int) or not isinstance(m, int):
            raise ValueError(f"options must give the integers n and m, got n={n!r}, m={m!r}")
        ref.check_pattern(n, m)
        ref.check_in_features(in_features, m)
        dtype = DTYPES[options["dtype"]]
        expected = {"indices"} | ({"scales"} if dtype == torch.int8 else set())
        if set(structure) != expected:
            raise ValueError(f"structure must hold {', '.join(sorted(expected))}, got "
                             f"{', '.join(sorted(structure)) or 'nothing'}")
        check_tensor("values", values, (out_features, ref.kept_per_row(in_features, n, m)), (dtype,))
        indices = structure["indices"]
        check_tensor("indices", indices, (out_features, ref.index_bytes_per_row(in_features, n, m)), (torch.uint8,))
        ref.check_positions(ref.unpack_positions(indices, in_features, n, m), n)
        scales = structure.get("scales")
        if dtype == torch.int8:
            check_tensor("scales", scales, (out_features,), (torch.float32,))
        return cls(out_features, in_features, values, indices, scales, n, m)

    def mask(self) -> Tensor:
        return ref.mask_of(self.indices, self.out_features, self.in_features, self.n, self.m)

    def to_dense(self, values: Optional[Tensor] = None) -> Tensor:
        values = self.values if values is None else values
        return ref.to_dense(values, self.indices, self.scales, self.in_features, self.n, self.m)

    def linear(self, x: Tensor, values: Tensor, bias: Optional[Tensor]) -> Tensor:
        return nm_linear(x, values, self.indices, bias, scales=self.scales, n=self.n, m=self.m)
