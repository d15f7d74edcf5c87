"""What commands show besides results: progress bars only on a terminal and never with --quiet (before or
after the command); --quiet also hides info lines such as the patch report."""

from __future__ import annotations

import io
import sys

from apt_fast.cli import main


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def _fine_tune(model_dir: str, data: str, save_path) -> list[str]:
    return ["fine-tune", "--model-path", model_dir, "--data-path", data, "--save-path", str(save_path),
            "--epochs", "1", "--batch-size", "8", "--max-steps", "2", "--no-tensorboard"]


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


def test_training_progress_bar_only_on_a_terminal(tmp_path, tiny_model_dir, train_file, monkeypatch):
    terminal = Terminal()
    monkeypatch.setattr(sys, "stderr", terminal)
    assert main(_fine_tune(tiny_model_dir, train_file, tmp_path / "a")) == 0
    assert "fine-tune: 100%|" in terminal.getvalue()
    for quiet in (["--quiet", *_fine_tune(tiny_model_dir, train_file, tmp_path / "b")],
                  [*_fine_tune(tiny_model_dir, train_file, tmp_path / "c"), "-q"]):
        terminal.seek(0)
        terminal.truncate()
        assert main(quiet) == 0
        assert "%|" not in terminal.getvalue(), terminal.getvalue()


def test_no_progress_bar_when_stderr_is_not_a_terminal(tmp_path, tiny_model_dir, train_file, capsys):
    assert main(["export-ollama", "--model-path", tiny_model_dir, "--output-dir", str(tmp_path / "o")]) == 0
    assert capsys.readouterr().err == ""
    assert main(_fine_tune(tiny_model_dir, train_file, tmp_path / "ft")) == 0
    err = capsys.readouterr().err
    assert "%|" not in err and "fine-tune: " not in err, err  # the info lines show, the bar does not


def test_quiet_hides_the_patch_report(tiny_model_dir, train_file, capsys):
    evaluate = ["evaluate", "--model-path", tiny_model_dir, "--data-path", train_file]
    assert main(evaluate) == 0
    assert "fast path: apt_fast.patch -> " in capsys.readouterr().err
    assert main(["--quiet", *evaluate]) == 0
    out, err = capsys.readouterr()
    assert err == "" and "loss: " in out
