"""Atomic file writes: a temporary file in the destination's directory, then os.replace, so a reader never
sees a half-written file and a failure leaves the old file as it was.

The temporary file gets the mode ``open()`` would give a new file (0o666 less the umask), not mkstemp's
0o600, so that other users, containers and daemons (Ollama) can read what is written.
"""

from __future__ import annotations

import json
import os
import tempfile
from typing import Any, Callable


def process_umask() -> int:
    """This process's umask (read from /proc where possible: setting it to read it is not thread-safe)."""
    try:
        with open("/proc/self/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except OSError:
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def atomic_write(path: str | os.PathLike, write: Callable[[str], None], *, prefix: str = ".tmp-",
                 suffix: str = "") -> None:
    """Call ``write(tmp_path)`` and move the result onto ``path``; ``path`` is never left half-written."""
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    fd, tmp_path = tempfile.mkstemp(prefix=prefix, suffix=suffix, dir=directory)
    try:
        os.fchmod(fd, 0o666 & ~process_umask())
    finally:
        os.close(fd)
    try:
        write(tmp_path)
        os.replace(tmp_path, path)
    except BaseException:
        if os.path.exists(tmp_path):
            os.remove(tmp_path)
        raise


def atomic_write_json(path: str | os.PathLike, obj: Any) -> None:
    """Write ``obj`` as UTF-8 JSON (indent 2, non-ASCII kept) atomically."""

    def write(tmp_path: str) -> None:
        with open(tmp_path, "w", encoding="utf-8") as f:
            json.dump(obj, f, ensure_ascii=False, indent=2)

    atomic_write(path, write)


def read_json(path: str | os.PathLike) -> Any:
    with open(path, encoding="utf-8") as f:
        return json.load(f)
