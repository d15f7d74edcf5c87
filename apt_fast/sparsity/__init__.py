"""Sparse weights: the packed formats of pruned nn.Linear weights (formats/) that the sparse matmul op families
(bitmap_linear, nm_linear, block_linear) read, and ``sparsify(model)`` (convert.py), which swaps pruned layers
for apt_fast.modules.SparseLinear where the dispatcher (dispatch.py) measures the sparse kernel faster.

``sparsify`` and its report load on first use: apt_fast.modules.sparse_linear imports the formats from here, and
sparsify imports it back."""

_LAZY = {"sparsify": ".convert", "SparsifyReport": ".report", "LayerDecision": ".report"}


def __getattr__(name: str):
    if name in _LAZY:
        import importlib

        value = getattr(importlib.import_module(_LAZY[name], __name__), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = list(_LAZY)
