"""Which sparse format fits a pruning mask: N:M when every group of m inputs keeps at most n (2:4, then 4:8), block
when the mask is made of whole blocks (32x32, 16x16, then 1x16), else the bitmap, which fits any mask. Each format
that does not fit says why (the reason a layer stays dense when only such formats are allowed)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import List, Sequence, Tuple, Union

import torch
from torch import Tensor

from .formats import FORMATS

NM_PATTERNS = ((2, 4), (4, 8))
BLOCK_SHAPES = ((32, 32), (16, 16), (1, 16))
AUTO_ORDER = ("nm", "block", "bitmap")
SHORT_DTYPES = {torch.float32: "fp32", torch.bfloat16: "bf16", torch.int8: "int8"}


@dataclass(frozen=True)
class Candidate:
    """A format that fits the mask, with the options to pack it (n and m, or block)."""

    format: str
    options: dict = field(default_factory=dict)

    def describe(self, dtype: torch.dtype) -> str:
        """e.g. 'bitmap fp32', '2:4 bf16', 'block 32x32 fp32'."""
        if self.format == "nm":
            name = f"{self.options['n']}:{self.options['m']}"
        elif self.format == "block":
            name = "block {}x{}".format(*self.options["block"])
        else:
            name = self.format
        return f"{name} {SHORT_DTYPES.get(dtype, str(dtype).replace('torch.', ''))}"


def check_formats(formats: Union[str, Sequence[str]]) -> Tuple[str, ...]:
    """"auto" -> every format in the order nm, block, bitmap; a name or a sequence of names -> those, in order."""
    if formats == "auto":
        return AUTO_ORDER
    names = (formats,) if isinstance(formats, str) else tuple(formats)
    unknown = [name for name in names if name not in FORMATS]
    if not names or unknown:
        raise ValueError(f"formats must be 'auto' or names among {', '.join(map(repr, sorted(FORMATS)))}, got "
                         f"{formats!r}")
    return names


def _nm_fit(mask: Tensor) -> Tuple[List[Candidate], List[str]]:
    rows, cols = mask.shape
    reasons = []
    for n, m in NM_PATTERNS:
        if cols % m:
            reasons.append(f"K={cols} not divisible by m={m}")
            continue
        counts = mask.reshape(rows, cols // m, m).sum(-1)  # [N, K / m]
        over = counts > n
        if over.any():
            row, group = (int(i) for i in over.nonzero()[0])
            reasons.append(f"not {n}:{m}: row {row} keeps {int(counts[row, group])} of inputs "
                           f"{group * m}..{group * m + m - 1}")
            continue
        return [Candidate("nm", {"n": n, "m": m})], reasons
    return [], reasons


def _block_fit(mask: Tensor) -> Tuple[List[Candidate], List[str]]:
    rows, cols = mask.shape
    reasons = []
    for bn, bk in BLOCK_SHAPES:
        if rows % bn or cols % bk:
            reasons.append(f"block {bn}x{bk} does not tile {rows}x{cols}")
            continue
        counts = mask.reshape(rows // bn, bn, cols // bk, bk).sum((1, 3))  # [N / bn, K / bk]
        if ((counts != 0) & (counts != bn * bk)).any():
            reasons.append(f"not whole {bn}x{bk} blocks")
            continue
        return [Candidate("block", {"block": (bn, bk)})], reasons
    return [], reasons


def fitting_formats(mask: Tensor, formats: Sequence[str]) -> Tuple[List[Candidate], List[str]]:
    """mask [N, K] bool -> (the formats among ``formats`` that fit it, in that order; why the others do not)."""
    fits: List[Candidate] = []
    reasons: List[str] = []
    for name in formats:
        if name == "nm":
            found, why = _nm_fit(mask)
        elif name == "block":
            found, why = _block_fit(mask)
        else:
            found, why = [Candidate(name)], []
        fits += found
        reasons += why
    return fits, reasons
