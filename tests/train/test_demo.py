"""`apt-fast demo --quick`: every stage runs and reports, and the student is exported."""

from __future__ import annotations

import os


def test_quick_demo_runs_every_stage(tmp_path, capsys):
    from apt_fast.cli import main

    workdir = tmp_path / "demo"
    assert main(["demo", "--quick", "--workdir", str(workdir)]) == 0
    out = capsys.readouterr().out
    for stage in ("== 1. train from scratch: sort the letters", "== 2. fine-tune", "== 3. distil", "== 4. quantize",
                  "== 5. apt_fast", "== 6. export the student", "demo finished"):
        assert stage in out
    for scheme in ("int8-weight-only", "int8-dynamic", "fp8-e4m3"):
        assert f"{scheme} " in out
    assert "frozen embedding unchanged: True" in out and "exact match" in out and "speedup" in out
    assert os.path.getsize(workdir / "student.gguf") > 0
    assert os.path.isfile(workdir / ".apt-fast-demo")  # the next demo on this directory may replace it


def test_demo_refuses_a_folder_it_did_not_make(tmp_path, capsys):
    from apt_fast.cli import main

    mywork = tmp_path / "mywork"
    mywork.mkdir()
    (mywork / "notes.txt").write_text("the user's")
    assert main(["demo", "--quick", "--workdir", str(mywork)]) == 2
    assert capsys.readouterr().err == (f"apt-fast demo: error: --workdir {mywork}: not empty (notes.txt) and not made "
                                       f"by apt-fast demo; give a new or empty directory\n")
    assert os.listdir(mywork) == ["notes.txt"] and (mywork / "notes.txt").read_text() == "the user's"


def test_demo_workdir_new_empty_or_its_own(tmp_path):
    from apt_fast.demo.workdir import MARKER, prepare_workdir

    new, empty = tmp_path / "new" / "deeper", tmp_path / "empty"
    empty.mkdir()
    for workdir in (new, empty):
        prepare_workdir(str(workdir))
        assert os.listdir(workdir) == [MARKER]
    (new / "student.gguf").write_bytes(b"an earlier demo's")
    (new / "base").mkdir()
    prepare_workdir(str(new))  # the demo's own directory is emptied and reused
    assert os.listdir(new) == [MARKER]
