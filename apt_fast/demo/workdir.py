"""The demo's working directory: made by the demo (a marker file says so), or refused.

A new or empty directory becomes the demo's; a directory an earlier demo made is emptied and reused; any
other directory is refused, so that the demo never deletes files it did not write.
"""

from __future__ import annotations

import os
import shutil

from ..validation import check_output_dir

MARKER = ".apt-fast-demo"
_MARKER_TEXT = "Made by `apt-fast demo`; the next `apt-fast demo --workdir` on this directory replaces all of it.\n"


def prepare_workdir(workdir: str) -> None:
    """Make ``workdir`` an empty directory holding only the marker, or raise when it holds files that an
    earlier demo did not make (nothing is deleted then)."""
    check_output_dir("--workdir", workdir)
    entries = sorted(os.listdir(workdir)) if os.path.isdir(workdir) else []
    if entries and MARKER not in entries:
        shown = ", ".join(entries[:3]) + (", ..." if len(entries) > 3 else "")
        raise FileExistsError(f"--workdir {workdir}: not empty ({shown}) and not made by apt-fast demo; give a new "
                              f"or empty directory")
    for entry in entries:
        path = os.path.join(workdir, entry)
        if os.path.isdir(path) and not os.path.islink(path):
            shutil.rmtree(path)
        else:
            os.remove(path)
    os.makedirs(workdir, exist_ok=True)
    with open(os.path.join(workdir, MARKER), "w", encoding="utf-8") as f:
        f.write(_MARKER_TEXT)
