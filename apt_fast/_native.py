"""Access to the compiled extension apt_fast._C, with a build hint when it is missing."""

from __future__ import annotations

import functools
import os

BUILD_HINT = (
    "the apt_fast native extension (apt_fast._C) is not built. Build it with `pip install -e .` "
    "(needs a C++17 compiler and CMake) or `make test` from a clone; unset APT_FAST_SKIP_NATIVE if it is set"
)


class NativeExtensionMissing(RuntimeError):
    """Raised when native code is needed but apt_fast._C was not built."""


@functools.lru_cache(maxsize=None)
def _load():
    if os.environ.get("APT_FAST_SKIP_NATIVE", "") == "1":
        return None
    try:
        from . import _C
    except ImportError:
        return None
    return _C


def is_available() -> bool:
    return _load() is not None


def native():
    """The _C module; raises NativeExtensionMissing with the build hint if it is absent."""
    module = _load()
    if module is None:
        raise NativeExtensionMissing(BUILD_HINT)
    return module
