"""Run-time CPU features and kernel tiers: CPUID/XGETBV detection agrees with the kernel's own /proc/cpuinfo
flags, the tier follows from the features, APT_FAST_SIMD lowers it (avx512 = no AMX), and where the CPU has AMX
the tiles really run in this process (one TDPBSSD against integer arithmetic)."""

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from apt_fast import _native, backends

pytestmark = pytest.mark.skipif(not _native.is_available(), reason="apt_fast._C is not built")

TIERS = ("scalar", "avx2", "avx512", "amx")
# _C.cpu_features() name -> the flag Linux prints in /proc/cpuinfo for the same CPUID bit.
CPUINFO_FLAGS = {
    "avx2": "avx2", "fma": "fma", "f16c": "f16c", "avx512f": "avx512f", "avx512bw": "avx512bw",
    "avx512vl": "avx512vl", "avx512dq": "avx512dq", "avx512_vnni": "avx512_vnni", "avx512_bf16": "avx512_bf16",
    "avx512_fp16": "avx512_fp16", "avx512_vbmi": "avx512vbmi", "avx512_vbmi2": "avx512_vbmi2",
    "amx_tile": "amx_tile", "amx_int8": "amx_int8", "amx_bf16": "amx_bf16",
}


def features():
    return _native.native().cpu_features()


def cpuinfo_flags():
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("flags"):
            return set(line.split(":", 1)[1].split())
    pytest.skip("/proc/cpuinfo has no flags line")


@pytest.mark.skipif(not Path("/proc/cpuinfo").exists(), reason="needs Linux's /proc/cpuinfo")
def test_cpuid_agrees_with_the_kernels_flags():
    found, flags = features(), cpuinfo_flags()
    disagree = {name: found[name] for name, flag in CPUINFO_FLAGS.items() if found[name] != (flag in flags)}
    assert not disagree, f"CPUID says {disagree}, /proc/cpuinfo says the opposite"


def test_tier_follows_from_the_features():
    f = features()
    avx2 = f["os_avx"] and f["avx2"] and f["fma"] and f["f16c"]
    avx512 = avx2 and f["os_avx512"] and all(f[n] for n in ("avx512f", "avx512bw", "avx512vl", "avx512dq",
                                                             "avx512_vnni", "avx512_bf16", "avx512_vbmi",
                                                             "avx512_vbmi2"))
    amx = avx512 and f["os_amx"] and f["amx_permitted"] and all(f[n] for n in ("amx_tile", "amx_int8", "amx_bf16"))
    expected = "amx" if amx else "avx512" if avx512 else "avx2" if avx2 else "scalar"
    assert _native.native().detected_simd_level() == expected
    assert backends.available()["simd_detected"] == expected and backends.available()["cpu_features"] == f


def run_with_simd(value):
    code = "import apt_fast._C as C; print(C.simd_level())"
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60,
                          env={**os.environ, "APT_FAST_SIMD": value})


@pytest.mark.parametrize("tier", TIERS)
def test_apt_fast_simd_lowers_the_tier(tier):
    best = _native.native().detected_simd_level()
    result = run_with_simd(tier)
    assert result.returncode == 0, result.stderr
    expected = tier if TIERS.index(tier) <= TIERS.index(best) else best  # never raised above the CPU's
    assert result.stdout.strip() == expected


def test_unknown_simd_value_is_named():
    code = "import apt_fast._C as C; C.simd_level()"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60,
                            env={**os.environ, "APT_FAST_SIMD": "sse9"})
    assert "simd level must be one of 'scalar', 'avx2', 'avx512', 'amx', got 'sse9'" in result.stderr


def test_setting_a_tier_above_the_cpus_is_refused():
    native = _native.native()
    best = native.detected_simd_level()
    if best == "amx":
        pytest.skip("this CPU has every tier")
    above = TIERS[TIERS.index(best) + 1]
    with pytest.raises(ValueError, match=f"simd level '{above}' is not supported by this CPU \\(best: '{best}'\\)"):
        native.set_simd_level(above)


def vnni4(b):  # b [K, N] int8 -> [K / 4, 4 N]: the four k-consecutive bytes of each column side by side
    k, n = b.shape
    return np.ascontiguousarray(b.reshape(k // 4, 4, n).transpose(0, 2, 1).reshape(k // 4, 4 * n))


@pytest.mark.skipif(not _native.is_available() or _native.native().detected_simd_level() != "amx",
                    reason="this CPU or OS has no usable AMX (tiles, INT8/BF16, and Linux's tile-data permission)")
def test_amx_tiles_run_and_agree_with_integer_arithmetic():
    rng = np.random.default_rng(0)
    a = rng.integers(-128, 128, (16, 64), dtype=np.int8)  # [M, K]
    b = rng.integers(-128, 128, (64, 16), dtype=np.int8)  # [K, N]
    b_packed, c = vnni4(b), np.zeros((16, 16), dtype=np.int32)
    _native.native().amx_int8_tile_product(a.ctypes.data, b_packed.ctypes.data, c.ctypes.data)
    np.testing.assert_array_equal(c, a.astype(np.int32) @ b.astype(np.int32))


def test_amx_entry_refuses_a_lower_tier():
    from simd_tiers import at_tier

    with at_tier("avx512"):
        with pytest.raises(ValueError, match="needs the 'amx' tier, but the kernels run at 'avx512'"):
            _native.native().amx_int8_tile_product(0, 0, 0)
