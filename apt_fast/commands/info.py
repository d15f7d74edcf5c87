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
