"""Argument checks shared by the ops and the commands (tensors, output locations, devices): each error names
the argument, what was expected and what was given."""

from __future__ import annotations

import errno
import os
import re
import tempfile
from typing import Iterable

import torch


def check_dtype(name: str, tensor: torch.Tensor, allowed: Iterable[torch.dtype]) -> None:
    allowed = tuple(allowed)
    if tensor.dtype not in allowed:
        names = " or ".join(str(d).replace("torch.", "") for d in allowed)
        raise ValueError(f"{name} must be {names}, got {str(tensor.dtype).replace('torch.', '')}")


def check_ndim(name: str, tensor: torch.Tensor, ndim: int, layout: str) -> None:
    if tensor.dim() != ndim:
        raise ValueError(f"{name} must be {ndim}-D {layout}, got shape {tuple(tensor.shape)}")


def check_same_device(name: str, tensor: torch.Tensor, reference_name: str, reference: torch.Tensor) -> None:
    if tensor.device != reference.device:
        raise ValueError(f"{name} must be on {reference.device} like {reference_name}, got {tensor.device}")


def check_in_range(name: str, value: float, low: float, high: float, *, low_open: bool = False,
                   high_open: bool = False) -> None:
    too_low = value <= low if low_open else value < low
    too_high = value >= high if high_open else value > high
    if too_low or too_high:
        interval = f"{'(' if low_open else '['}{low}, {high}{')' if high_open else ']'}"
        raise ValueError(f"{name} must be in {interval}, got {value}")


def check_choice(name: str, value: str, choices: Iterable[str]) -> None:
    choices = tuple(choices)
    if value not in choices:
        raise ValueError(f"{name} must be one of {', '.join(repr(c) for c in choices)}, got {value!r}")


def _nearest_existing(path: str) -> str:
    while not os.path.exists(path):
        parent = os.path.dirname(path)
        if parent == path:
            break
        path = parent
    return path


def _check_writable_directory(name: str, shown: str, directory: str, target_exists: bool) -> None:
    """``directory`` exists and takes a new file (tried with a temporary file: permissions, read-only file
    systems and pseudo file systems all show); the errors name ``name`` and ``shown``."""
    if not os.path.isdir(directory):
        raise NotADirectoryError(errno.ENOTDIR, f"{name} {shown}: cannot be created, {directory} is not a directory")
    try:
        with tempfile.TemporaryFile(dir=directory, prefix=".apt-fast-write-test-"):
            pass
    except OSError as err:
        where = "not writable" if target_exists else f"cannot be created in {directory}"
        raise OSError(err.errno, f"{name} {shown}: {where} ({err.strerror})") from None


def check_output_dir(name: str, path: str | os.PathLike) -> str:
    """``path`` as a str when a command may write into it: a writable directory, or a path whose nearest
    existing ancestor is a writable directory (it can be created). Nothing is created."""
    path = os.fspath(path)
    if not path:
        raise ValueError(f"{name} must be a directory, got an empty path")
    absolute = os.path.abspath(path)
    if os.path.exists(absolute) and not os.path.isdir(absolute):
        raise NotADirectoryError(errno.ENOTDIR, f"{name} {path}: is a file, expected a directory")
    existing = _nearest_existing(absolute)
    _check_writable_directory(name, path, existing, target_exists=existing == absolute)
    return path


def check_output_file(name: str, path: str | os.PathLike) -> str:
    """``path`` as a str when a command may write the file: not a directory or a special file, and its
    directory is writable or can be created (see :func:`check_output_dir`). Nothing is created."""
    path = os.fspath(path)
    if not path:
        raise ValueError(f"{name} must be a file name, got an empty path")
    absolute = os.path.abspath(path)
    if os.path.isdir(absolute):
        raise IsADirectoryError(errno.EISDIR, f"{name} {path}: is a directory, expected a file name")
    if os.path.exists(absolute) and not os.path.isfile(absolute):
        raise ValueError(f"{name} {path}: not a regular file")
    existing = _nearest_existing(os.path.dirname(absolute))
    _check_writable_directory(name, path, existing, target_exists=existing == os.path.dirname(absolute))
    return path


def check_device(name: str, device: str) -> None:
    """``device`` is cpu, cuda, cuda:N or auto, and a CUDA device exists in this process."""
    match = re.fullmatch(r"cpu|auto|cuda(?::(\d+))?", device)
    if match is None:
        raise ValueError(f"{name} must be cpu, cuda, cuda:N or auto, got {device!r}")
    if not device.startswith("cuda"):
        return
    if not torch.cuda.is_available():
        reason = "this torch is a CPU-only build" if torch.version.cuda is None else "no CUDA device is visible"
        raise ValueError(f"{name} {device}: CUDA is not available ({reason}); use {name} cpu")
    count = torch.cuda.device_count()
    if match.group(1) is not None and int(match.group(1)) >= count:
        raise ValueError(f"{name} {device}: this machine has {count} CUDA device(s), cuda:0 to cuda:{count - 1}")
