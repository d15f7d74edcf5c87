"""What commands show besides results: progress bars only on a terminal and never with --quiet (before or
after the command); --quiet also hides info lines such as the patch report."""

from __future__ import annotations

import io
import sys

from apt_fast.cli import main


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_export_progress_bar_only_on_a_terminal(tmp_path, tiny_model_dir, monkeypatch):
    terminal = Terminal()
    monkeypatch.setattr(sys, "stderr", terminal)  # in the test: pytest sets its own stderr between set-up and call
    export = ["export-gguf", "--model-path", tiny_model_dir, "--type", "f32", "--output"]
    assert main([*export, str(tmp_path / "a.gguf")]) == 0
    assert "export f32: 100%" in terminal.getvalue()
    for quiet in (["--quiet", *export, str(tmp_path / "b.gguf")], [*export, str(tmp_path / "c.gguf"), "-q"]):
        terminal.seek(0)
        terminal.truncate()
        assert main(quiet) == 0
        assert terminal.getvalue() == ""


def test_no_progress_bar_when_stderr_is_not_a_terminal(tmp_path, tiny_model_dir, capsys):
    assert main(["export-ollama", "--model-path", tiny_model_dir, "--output-dir", str(tmp_path / "o")]) == 0
    assert capsys.readouterr().err == ""


def test_quiet_hides_the_patch_report(tiny_model_dir, train_file, capsys):
    evaluate = ["evaluate", "--model-path", tiny_model_dir, "--data-path", train_file]
    assert main(evaluate) == 0
    assert "fast path: apt_fast.patch -> " in capsys.readouterr().err
    assert main(["--quiet", *evaluate]) == 0
    out, err = capsys.readouterr()
    assert err == "" and "loss: " in out
