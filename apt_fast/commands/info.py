"""`apt-fast info`: version, build (SIMD level, threads, compiler) and the backend serving each op."""

from __future__ import annotations

import argparse

import torch


def add_parser(subparsers) -> None:
    parser = subparsers.add_parser("info", help="show the version, the native build and which backend serves each op",
                                   description="Show the version, the native build and which backend serves each op.")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from .. import __version__, _native, backends

    print(f"apt_fast {__version__}  (torch {torch.__version__})")
    print(f"backend setting: {backends.selected_backend()}  (APT_FAST_BACKEND)")
    if _native.is_available():
        native = _native.native()
        print(f"native build: yes  SIMD in use: {native.simd_level()} (detected: {native.detected_simd_level()})  "
              f"compiler: {native.compiler()}")
    else:
        print(f"native build: no  ({_native.BUILD_HINT})")
    print(f"threads: {torch.get_num_threads()}  (torch.get_num_threads(); the native kernels use the same count)")
    print(f"triton: {'installed' if backends.triton_available() else 'not installed'}")
    print("ops:")
    for op, serving in backends.op_table().items():
        print(f"  apt_fast::{op:<24} cpu: {serving['cpu']:<10} cuda: {serving['cuda']}")
    return 0
