"""The unstructured format: a bitmap of the kept weights, the offset of each row's first kept weight, and the kept
values packed in row-major order (layout and arithmetic: apt_fast.reference.bitmap_linear). Any mask packs; the
bytes read per output row are 8 per 64 inputs plus the kept values, so a decode-time GEMV speeds up about as much
as the bytes shrink."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Dict, Optional

import torch
from torch import Tensor

from ...functional.bitmap_linear import bitmap_linear
from ...reference import bitmap_linear as ref
from .base import SparseWeight, check_pack_arguments, check_tensor, dtype_name, sparse_format

DTYPES = {dtype_name(dtype): dtype for dtype in ref.VALUE_DTYPES}


@sparse_format("bitmap")
@dataclass(frozen=True, eq=False)
class BitmapWeight(SparseWeight):
    bitmap: Tensor  # [N, ceil(K / 64)] int64
    row_offsets: Tensor  # [N + 1] int64
    scales: Optional[Tensor] = None  # [N] fp32, int8 values only

    @classmethod
    def pack(cls, weight: Tensor, mask: Tensor, dtype: torch.dtype = torch.float32, **options) -> "BitmapWeight":
        if options:
            raise ValueError(f"the bitmap format takes no options, got {', '.join(sorted(options))}")
        check_pack_arguments(weight, mask, dtype, ref.VALUE_DTYPES)
        bitmap, row_offsets, values, scales = ref.pack(weight.detach(), mask, dtype)
        return cls(weight.shape[0], weight.shape[1], values, bitmap, row_offsets, scales)

    @classmethod
    def from_state(cls, out_features: int, in_features: int, options: dict, values: Tensor,
                   structure: Dict[str, Tensor]) -> "BitmapWeight":
        if options.get("format") != "bitmap":
            raise ValueError(f"options['format'] must be 'bitmap', got {options.get('format')!r}")
        if options.get("dtype") not in DTYPES:
            raise ValueError(f"options['dtype'] must be one of {', '.join(map(repr, DTYPES))}, got "
                             f"{options.get('dtype')!r}")
        dtype = DTYPES[options["dtype"]]
        expected = {"bitmap", "row_offsets"} | ({"scales"} if dtype == torch.int8 else set())
        if set(structure) != expected:
            raise ValueError(f"structure must hold {', '.join(sorted(expected))}, got "
                             f"{', '.join(sorted(structure)) or 'nothing'}")
        n, k = out_features, in_features
        bitmap, row_offsets = structure["bitmap"], structure["row_offsets"]
        check_tensor("bitmap", bitmap, (n, ref.words_of(k)), (torch.int64,))
        check_tensor("row_offsets", row_offsets, (n + 1,), (torch.int64,))
        wide = ref.unpack_bitmap(bitmap, ref.words_of(k) * ref.WORD)  # [N, words * 64]
        if wide[:, k:].any():
            raise ValueError(f"bitmap must have no bits set past in_features {k}, got "
                             f"{int(wide[:, k:].sum())} set")
        counted = ref.row_offsets_of(wide)
        if not torch.equal(row_offsets, counted):
            row = int((row_offsets != counted).nonzero()[0])
            raise ValueError(f"row_offsets must count the bitmap's kept weights: row_offsets[{row}] must be "
                             f"{int(counted[row])}, got {int(row_offsets[row])}")
        check_tensor("values", values, (int(counted[-1]),), (dtype,))
        scales = structure.get("scales")
        if scales is not None:
            check_tensor("scales", scales, (n,), (torch.float32,))
        return cls(n, k, values, bitmap, row_offsets, scales)

    def mask(self) -> Tensor:
        return ref.unpack_bitmap(self.bitmap, self.in_features)

    def to_dense(self, values: Optional[Tensor] = None) -> Tensor:
        return ref.to_dense(self.bitmap, self.values if values is None else values, self.scales, self.in_features)

    def linear(self, x: Tensor, values: Tensor, bias: Optional[Tensor]) -> Tensor:
        return bitmap_linear(x, self.bitmap, self.row_offsets, values, bias, scales=self.scales)
