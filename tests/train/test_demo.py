"""`apt-fast demo --quick`: every stage runs and reports, and the student is exported."""

from __future__ import annotations

import os


def test_quick_demo_runs_every_stage(tmp_path, capsys):
    from apt_fast.cli import main

    workdir = tmp_path / "demo"
    assert main(["demo", "--quick", "--workdir", str(workdir)]) == 0
    out = capsys.readouterr().out
    for stage in ("== 1. train from scratch: sort the letters", "== 2. fine-tune", "== 3. distil", "== 4. apt_fast",
                  "== 5. export the student", "demo finished"):
        assert stage in out
    assert "frozen embedding unchanged: True" in out and "exact match" in out and "speedup" in out
    assert os.path.getsize(workdir / "student.gguf") > 0
