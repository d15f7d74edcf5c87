"""The checks every command gets before it loads data or models.

Each path or device option has one kind, by its argparse dest (ARGUMENT_KINDS), whatever command it is
on; ``check_arguments`` runs the kind's check on every such option a command was given: the device first,
then where the command writes, then what it reads. Errors name the option, what was expected and what was
given, e.g. ``--save-path /x: not writable (Permission denied)``. What a command's output would replace
(``--overwrite``) is checked by the command itself, also before it loads anything.
"""

from __future__ import annotations

import argparse
import enum
import os

from ..validation import check_device, check_output_dir, check_output_file


class Kind(enum.Enum):
    DEVICE = "cpu, cuda, cuda:N or auto"
    OUTPUT_DIR = "a directory the command writes into (created when missing)"
    OUTPUT_FILE = "a file the command writes (replaced only with --overwrite)"
    MODEL = "an APT model (a model directory, a .pt checkpoint or a .gguf file)"
    DATA = "a data file"
    JSON = "a JSON file"
    GGUF = "a .gguf file"
    INPUT_DIR = "an existing directory the command reads"


ARGUMENT_KINDS = {
    "device": Kind.DEVICE,
    "save_path": Kind.OUTPUT_DIR, "output_dir": Kind.OUTPUT_DIR, "workdir": Kind.OUTPUT_DIR,
    "output": Kind.OUTPUT_FILE, "json": Kind.OUTPUT_FILE,
    "model_path": Kind.MODEL, "teacher": Kind.MODEL, "student": Kind.MODEL,
    "data_path": Kind.DATA, "val_data_path": Kind.DATA, "calibration_data": Kind.DATA,
    "config": Kind.JSON, "student_config": Kind.JSON,
    "input": Kind.GGUF,
    "models_dir": Kind.INPUT_DIR,
}
MODEL_FILES = ("model.safetensors", "model.pt")  # what makes a directory a model for apt_fast.load
_MODEL_FILE_STARTS = (b"GGUF", b"PK\x03\x04", b"\x80")  # GGUF; torch.save's zip; torch.save's legacy pickle


def flag(dest: str) -> str:
    return "--" + dest.replace("_", "-")


def _existing_file(name: str, path: str, expected: str) -> None:
    if not os.path.exists(path):
        raise FileNotFoundError(f"{name} {path}: no such file")
    if os.path.isdir(path):
        raise IsADirectoryError(f"{name} {path}: is a directory, expected {expected}")


def check_model(name: str, path: str) -> None:
    """``path`` exists and is in a format apt_fast.load reads: a directory with model.safetensors or model.pt,
    a GGUF file, or a torch.save file. Anything else (text, a data file, a truncated download that is empty)
    is refused here rather than handed to torch.load."""
    if not os.path.exists(path):
        raise FileNotFoundError(f"{name} {path}: no such file or directory")
    if os.path.isdir(path):
        if not any(os.path.isfile(os.path.join(path, f)) for f in MODEL_FILES):
            raise ValueError(f"{name} {path}: not a model directory (it has neither {' nor '.join(MODEL_FILES)})")
        return
    with open(path, "rb") as f:
        start = f.read(4)
    if start.startswith(_MODEL_FILE_STARTS):
        return
    if path.lower().endswith(".gguf"):
        raise ValueError(f"{name} {path}: not a GGUF file (the first 4 bytes are {start!r}, not b'GGUF')")
    got = "an empty file" if not start else "a file that is neither GGUF nor torch.save output"
    raise ValueError(f"{name} {path}: expected {Kind.MODEL.value}, got {got}")


def _check(kind: Kind, name: str, value: str, args: argparse.Namespace) -> None:
    if kind is Kind.DEVICE:
        check_device(name, value)
    elif kind is Kind.OUTPUT_DIR:
        check_output_dir(name, value)
    elif kind is Kind.OUTPUT_FILE:
        check_output_file(name, value)
        if os.path.exists(value) and not getattr(args, "overwrite", False):
            raise FileExistsError(f"{name} {value} exists; pass --overwrite to replace it")
    elif kind is Kind.MODEL:
        check_model(name, value)
    elif kind is Kind.INPUT_DIR:
        if not os.path.exists(value):
            raise FileNotFoundError(f"{name} {value}: no such directory")
        if not os.path.isdir(value):
            raise NotADirectoryError(f"{name} {value}: is a file, expected {kind.value}")
    else:
        _existing_file(name, value, kind.value)


def check_arguments(args: argparse.Namespace) -> None:
    """Run the check of every path and device option given to the command (ARGUMENT_KINDS), in the order
    device, outputs, inputs."""
    for dest, kind in ARGUMENT_KINDS.items():
        value = getattr(args, dest, None)
        if value is not None:
            _check(kind, flag(dest), value, args)
