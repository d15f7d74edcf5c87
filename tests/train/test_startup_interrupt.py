"""Ctrl-C while `apt-fast` starts (importing apt_fast imports torch, a second or more): one line and exit code
130, no traceback. The child process stalls in the import of one module and gets SIGINT there, so the
interrupt lands in that import every time."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

import apt_fast

REPO = Path(apt_fast.__file__).resolve().parent.parent  # apt_fast_launcher.py sits beside the package

STALL_IN_IMPORT = """
import sys, time

class StallIn:
    def find_spec(self, name, path=None, target=None):
        if name == {module!r}:
            print("importing", name, file=sys.stderr, flush=True)
            time.sleep(120)
        return None

sys.meta_path.insert(0, StallIn())
sys.argv = ["apt-fast", "--version"]
{run}
"""

# the console script's own two lines: from apt_fast_launcher import console_entry; sys.exit(console_entry())
SCRIPT = "from apt_fast_launcher import console_entry\nsys.exit(console_entry())"
DASH_M = "import runpy\nrunpy.run_module('apt_fast', run_name='__main__', alter_sys=True)"  # python -m apt_fast


@pytest.mark.parametrize("run, module", [
    (SCRIPT, "torch"),  # imported by `import apt_fast`
    (SCRIPT, "apt_fast.cli"),
    (DASH_M, "apt_fast.cli"),  # python -m imports the package (torch) before apt_fast/__main__.py runs
], ids=["apt-fast importing torch", "apt-fast importing apt_fast.cli", "python -m apt_fast importing apt_fast.cli"])
def test_ctrl_c_during_start_up_is_one_line_and_exit_code_130(run, module):
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))}
    child = subprocess.Popen([sys.executable, "-c", STALL_IN_IMPORT.format(module=module, run=run)], env=env,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert child.stderr.readline() == f"importing {module}\n"
        child.send_signal(signal.SIGINT)
        out, err = child.communicate(timeout=60)
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
    assert (child.returncode, out, err) == (130, "", "apt-fast: interrupted\n")
