"""Which implementation serves each op on each device, and the decorator that registers a kernel where it
is written.

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
from ..ops.library import LIBRARY, OPS, checked

BACKENDS = ("auto", "native", "reference")

# op name -> {dispatch key: implementation serving it}; filled by register_kernel.
REGISTERED: Dict[str, Dict[str, str]] = {}


def selected_backend() -> str:
    value = os.environ.get("APT_FAST_BACKEND", "auto").strip().lower() or "auto"
    if value not in BACKENDS:
        raise ValueError(f"APT_FAST_BACKEND must be one of {', '.join(BACKENDS)}, got {value!r}")
    return value


def triton_available() -> bool:
    return importlib.util.find_spec("triton") is not None


def _implementation(key: str) -> str:
    """'native' | 'triton' | 'reference': what a kernel registered for dispatch key `key` would serve."""
    if _BACKEND == "reference":
        return "reference"
    if key == "CPU":
        return "native" if (_BACKEND == "native" or _native.is_available()) else "reference"
    return "triton" if triton_available() else "reference"


_BACKEND = selected_backend()


def register_kernel(op: str, key: str) -> Callable[[Callable], Callable]:
    """Registers the decorated function as apt_fast::<op>'s kernel for dispatch key `key` ('CPU' or 'CUDA'),
    unless the backend setting leaves that device to the reference. The function is replaced by itself behind
    the op's argument check, so a direct call is checked like a call through the op."""

    def decorate(kernel: Callable) -> Callable:
        if op not in OPS:
            raise ValueError(f"apt_fast::{op} is not defined (apt_fast.ops defines: {', '.join(sorted(OPS))})")
        kernel = checked(op, kernel)
        implementation = _implementation(key)
        if implementation != "reference":
            LIBRARY.impl(op, kernel, key)  # on the defining library, so it lives as long as the op
            REGISTERED.setdefault(op, {})[key] = implementation
        return kernel

    return decorate


def op_table() -> Dict[str, Dict[str, str]]:
    """op name -> {'cpu': implementation, 'cuda': implementation} as registered in this process."""
    return {op: {key.lower(): REGISTERED.get(op, {}).get(key, "reference") for key in ("CPU", "CUDA")} for op in OPS}
