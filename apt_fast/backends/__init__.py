"""Per-device kernels for the apt_fast ops, chosen once at import.

APT_FAST_BACKEND:
  auto       (default) CPU -> native C++ kernels when apt_fast._C is built, else the reference;
             CUDA -> Triton kernels when triton is installed, else the reference.
  native     like auto, but a CPU call fails with the build hint if apt_fast._C is missing.
  reference  the plain-PyTorch reference everywhere.
"""

from __future__ import annotations

import importlib.util
import os
from typing import Callable, Dict

from .. import _native
from ..ops import LIBRARY, OPS
from ..ops.library import checked
from . import cpu, cpu_attention, triton, triton_attention

BACKENDS = ("auto", "native", "reference")

# op name -> {dispatch key: kernel}
KERNELS: Dict[str, Dict[str, Callable]] = {
    "distill_loss_fwd": {"CPU": cpu.distill_loss_fwd, "CUDA": triton.distill_loss_fwd},
    "flash_attention_fwd": {"CPU": cpu_attention.flash_attention_fwd, "CUDA": triton_attention.flash_attention_fwd},
    "flash_attention_bwd": {"CPU": cpu_attention.flash_attention_bwd, "CUDA": triton_attention.flash_attention_bwd},
    "apt_head_mean_fwd": {"CPU": cpu_attention.apt_head_mean_fwd, "CUDA": triton_attention.apt_head_mean_fwd},
    "apt_head_mean_bwd": {"CPU": cpu_attention.apt_head_mean_bwd, "CUDA": triton_attention.apt_head_mean_bwd},
    "apt_attention_fwd": {"CPU": cpu_attention.apt_attention_fwd, "CUDA": triton_attention.apt_attention_fwd},
    "apt_attention_bwd": {"CPU": cpu_attention.apt_attention_bwd, "CUDA": triton_attention.apt_attention_bwd},
    "apt_stats_fwd": {"CPU": cpu_attention.apt_stats_fwd},  # CUDA: the reference
    "apt_stats_bwd": {"CPU": cpu_attention.apt_stats_bwd},  # CUDA: the reference
}


def selected_backend() -> str:
    value = os.environ.get("APT_FAST_BACKEND", "auto").strip().lower() or "auto"
    if value not in BACKENDS:
        raise ValueError(f"APT_FAST_BACKEND must be one of {', '.join(BACKENDS)}, got {value!r}")
    return value


def triton_available() -> bool:
    return importlib.util.find_spec("triton") is not None


def _serving(backend: str) -> Dict[str, str]:
    """dispatch key -> 'native' | 'triton' | 'reference' for the given backend setting."""
    if backend == "reference":
        return {"CPU": "reference", "CUDA": "reference"}
    cpu_kernel = "native" if (backend == "native" or _native.is_available()) else "reference"
    return {"CPU": cpu_kernel, "CUDA": "triton" if triton_available() else "reference"}


_BACKEND = selected_backend()
_SERVING = _serving(_BACKEND)
_IMPL_LIBRARY = LIBRARY  # kernels are registered on the defining library, so they live as long as it does

for _op, _kernels in KERNELS.items():
    for _key, _kernel in _kernels.items():
        if _SERVING[_key] != "reference":
            _IMPL_LIBRARY.impl(_op, checked(_op, _kernel), _key)


def available() -> Dict[str, object]:
    """What this installation can run: the backend setting, native/Triton availability, SIMD level."""
    info: Dict[str, object] = {
        "backend": _BACKEND,
        "native": _native.is_available(),
        "triton": triton_available(),
    }
    if _native.is_available():
        info["simd"] = _native.native().simd_level()
    return info


def op_table() -> Dict[str, Dict[str, str]]:
    """op name -> {'cpu': implementation, 'cuda': implementation} as registered in this process."""
    return {op: {key.lower(): _SERVING[key] for key in ("CPU", "CUDA")} for op in OPS}
