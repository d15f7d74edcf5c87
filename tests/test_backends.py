"""Backend selection: APT_FAST_BACKEND and APT_FAST_SKIP_NATIVE, each in a fresh interpreter."""

import os
import subprocess
import sys

import pytest

PROBE = """
import torch, apt_fast
print(apt_fast.backends.op_table()["distill_loss_fwd"]["cpu"])
s, t = torch.randn(3, 7), torch.randn(3, 7)
try:
    print(float(apt_fast.functional.distill_loss(s, t)))
except Exception as error:
    print(type(error).__name__, error)
"""


def run_probe(**env):
    result = subprocess.run([sys.executable, "-c", PROBE], capture_output=True, text=True, timeout=120,
                            env={**os.environ, **env})
    if result.returncode != 0:
        raise AssertionError(result.stderr)
    return result.stdout.strip().splitlines()


def test_reference_backend_serves_every_op():
    serving, loss = run_probe(APT_FAST_BACKEND="reference")
    assert serving == "reference" and float(loss) > 0


def test_skip_native_falls_back_to_the_reference_under_auto():
    serving, loss = run_probe(APT_FAST_SKIP_NATIVE="1", APT_FAST_BACKEND="auto")
    assert serving == "reference" and float(loss) > 0


def test_native_backend_without_the_extension_fails_late_with_the_build_hint():
    serving, error = run_probe(APT_FAST_SKIP_NATIVE="1", APT_FAST_BACKEND="native")
    assert serving == "native"
    assert error.startswith("NativeExtensionMissing") and "pip install -e ." in error


def test_unknown_backend_is_rejected():
    result = subprocess.run([sys.executable, "-c", "import apt_fast"], capture_output=True, text=True, timeout=120,
                            env={**os.environ, "APT_FAST_BACKEND": "fastest"})
    assert result.returncode != 0
    assert "APT_FAST_BACKEND must be one of auto, native, reference, got 'fastest'" in result.stderr


@pytest.mark.parametrize("level", ["scalar", "avx2"])
def test_simd_level_can_be_lowered_by_environment(level):
    code = "import apt_fast._C as C; print(C.simd_level())"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60,
                            env={**os.environ, "APT_FAST_SIMD": level})
    if result.returncode != 0:
        pytest.skip("apt_fast._C is not built")
    assert result.stdout.strip() == level
