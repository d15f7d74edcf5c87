"""`apt-fast info`: version, build, the CPU's features and kernel tier, threads and the backend serving each op."""

from __future__ import annotations

import argparse

import torch

# Feature names of _C.cpu_features() that say whether the OS saves a register state, or granted one.
OS_STATE = ("os_avx", "os_avx512", "os_amx", "amx_permitted")


def add_parser(subparsers) -> None:
    parser = subparsers.add_parser(
        "info", help="show the version, the native build, the CPU's features and which backend serves each op",
        description="Show the version, the native build, the CPU's features and kernel tier, and which backend serves "
                    "each op.")
    parser.set_defaults(run=run)


# How the attention kernels multiply bf16 inputs at each SIMD tier (fp32 accumulation, softmax and statistics in all).
BF16_ATTENTION_TIERS = {
    "amx": "AMX tiles (AMX-BF16 tile products)",
    "avx512": "AVX-512 BF16 dot products (vdpbf16ps)",
    "fallback": "fp32 conversion fallback (bf16 widened to fp32, fp32 FMA)",
}


def bf16_attention_tier(level: str, features: dict) -> str:
    """Which of BF16_ATTENTION_TIERS runs bf16 attention at SIMD ``level`` ('scalar', 'avx2', 'avx512' or 'amx',
    as _C.simd_level() says) on a CPU with ``features`` (_C.cpu_features())."""
    if level == "amx" and features.get("amx_bf16") and features.get("amx_permitted"):
        return "amx"
    if level in ("amx", "avx512") and features.get("avx512_bf16"):
        return "avx512"
    return "fallback"


def _cpu_lines(native) -> list:
    features = native.cpu_features()
    present = [name for name, has in features.items() if has and name not in OS_STATE]
    missing = [name for name, has in features.items() if not has and name not in OS_STATE]
    yes = lambda name: "yes" if features[name] else "no"
    return [
        f"  features: {' '.join(present) or '(none)'}",
        f"  missing:  {' '.join(missing) or '(none)'}",
        f"  OS saves: AVX {yes('os_avx')}, AVX-512 {yes('os_avx512')}, AMX tiles {yes('os_amx')} "
        f"(tile data granted to this process: {yes('amx_permitted')})",
        f"SIMD in use: {native.simd_level()} (detected: {native.detected_simd_level()}; "
        "APT_FAST_SIMD=scalar|avx2|avx512|amx lowers it, avx512 = no AMX)",
        f"bf16 attention (--bf16): {BF16_ATTENTION_TIERS[bf16_attention_tier(native.simd_level(), features)]}",
    ]


def run(args: argparse.Namespace) -> int:
    from .. import __version__, _native, backends

    print(f"apt_fast {__version__}  (torch {torch.__version__})")
    print(f"backend setting: {backends.selected_backend()}  (APT_FAST_BACKEND)")
    print(f"CPU: {backends.cpu_model()}")
    if _native.is_available():
        native = _native.native()
        print(*_cpu_lines(native), sep="\n")
        print(f"native build: yes  compiler: {native.compiler()}")
    else:
        print(f"native build: no  ({_native.BUILD_HINT})")
    print(f"threads: {torch.get_num_threads()}  (torch.get_num_threads(); the native kernels use the same count)")
    print(f"triton: {'installed' if backends.triton_available() else 'not installed'}")
    print("ops:")
    for op, serving in backends.op_table().items():
        print(f"  apt_fast::{op:<24} cpu: {serving['cpu']:<10} cuda: {serving['cuda']}")
    return 0
