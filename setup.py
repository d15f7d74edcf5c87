"""Build apt_fast: the Python package plus the pybind11 extension apt_fast._C, compiled with CMake.

APT_FAST_SKIP_NATIVE=1 installs the pure-Python package only; native calls then explain how to build.
"""

import os
import shutil
import subprocess
import sys
from pathlib import Path

from setuptools import Extension, find_packages, setup
from setuptools.command.build_ext import build_ext

ROOT = Path(__file__).resolve().parent


class CMakeExtension(Extension):
    def __init__(self, name: str):
        super().__init__(name, sources=[])


def _require_tool(names, what):
    for name in names:
        if shutil.which(name):
            return name
    raise RuntimeError(
        f"building apt_fast._C needs {what}, but none of {', '.join(names)} is on PATH. "
        f"Install it (e.g. `apt-get install cmake g++` or `pip install cmake`), "
        f"or set APT_FAST_SKIP_NATIVE=1 to install the pure-Python package."
    )


def _cmake_executable():
    try:
        import cmake  # the PyPI wheel ships a binary

        return str(Path(cmake.CMAKE_BIN_DIR) / "cmake")
    except ImportError:
        return _require_tool(["cmake"], "CMake >= 3.18")


class CMakeBuild(build_ext):
    def build_extension(self, ext: CMakeExtension) -> None:
        _require_tool(["c++", "g++", "clang++"], "a C++17 compiler")
        cmake = _cmake_executable()
        import pybind11

        out_dir = Path(self.get_ext_fullpath(ext.name)).resolve().parent
        build_dir = ROOT / "build" / f"cmake-py{sys.version_info.major}{sys.version_info.minor}"
        build_dir.mkdir(parents=True, exist_ok=True)
        generator = ["-G", "Ninja"] if shutil.which("ninja") else []
        configure = [
            cmake, str(ROOT), *generator,
            f"-DCMAKE_LIBRARY_OUTPUT_DIRECTORY={out_dir}",
            f"-DPython_EXECUTABLE={sys.executable}",
            f"-Dpybind11_DIR={pybind11.get_cmake_dir()}",
            "-DCMAKE_BUILD_TYPE=Release",
        ]
        subprocess.run(configure, cwd=build_dir, check=True)
        jobs = str(os.cpu_count() or 2)
        subprocess.run([cmake, "--build", ".", "--parallel", jobs], cwd=build_dir, check=True)


skip_native = os.environ.get("APT_FAST_SKIP_NATIVE", "") == "1"

setup(
    packages=find_packages(include=["apt_fast", "apt_fast.*"]) + ["apt_fast.kernels"],
    package_dir={"apt_fast.kernels": "kernels"},
    py_modules=["apt_fast_launcher"],  # the `apt-fast` script: catches a Ctrl-C while apt_fast imports torch
    ext_modules=[] if skip_native else [CMakeExtension("apt_fast._C")],
    cmdclass={} if skip_native else {"build_ext": CMakeBuild},
    zip_safe=False,
)
