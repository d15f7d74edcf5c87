"""One rule for where commands write: the output folder is checked before anything is loaded and created
when missing; an existing output is replaced only with --overwrite; a failure while writing, a full disk
included, is one line and keeps what was there."""

from __future__ import annotations

import errno
import os

import pytest

from apt_fast.cli import main


@pytest.fixture
def gguf_file(tmp_path, tiny_model_dir):
    path = tmp_path / "exported" / "model.gguf"
    assert main(["export-gguf", "--model-path", tiny_model_dir, "--output", str(path), "--type", "f32"]) == 0
    return str(path)


@pytest.fixture
def nothing_loaded(monkeypatch):
    """Loading a model or a GGUF file fails the test: the command had to stop before."""
    def loaded(*args, **kwargs):
        raise AssertionError("a model was loaded before the command's checks failed")

    monkeypatch.setattr("apt_fast.models.apt.loading.load", loaded)
    monkeypatch.setattr("apt_fast.models.apt.gguf_loading.load_gguf", loaded)


def _ok(capsys, argv) -> None:
    assert main(argv) == 0
    assert capsys.readouterr().err == ""  # no progress bar: stderr is not a terminal here


def _error(capsys, argv) -> str:
    assert main(argv) == 2
    lines = capsys.readouterr().err.splitlines()
    assert len(lines) == 1, lines
    return lines[0]


def test_commands_create_their_output_folders(tmp_path, tiny_model_dir, gguf_file, capsys):
    deep = tmp_path / "new" / "deeper"
    _ok(capsys, ["import-gguf", "--input", gguf_file, "--output-dir", str(deep / "imported")])
    assert {"config.json", "model.safetensors"} <= set(os.listdir(deep / "imported"))
    _ok(capsys, ["export-ollama", "--model-path", tiny_model_dir, "--output-dir", str(deep / "ollama")])
    assert sorted(os.listdir(deep / "ollama")) == ["Modelfile", "README.md", "apt-q8_0.gguf"]
    _ok(capsys, ["export-gguf", "--model-path", tiny_model_dir, "--output", str(deep / "gguf" / "m.gguf")])
    assert os.path.getsize(deep / "gguf" / "m.gguf") > 0


def test_existing_outputs_need_overwrite(tmp_path, tiny_model_dir, gguf_file, capsys):
    assert _error(capsys, ["export-gguf", "--model-path", tiny_model_dir, "--output", gguf_file]) == (
        f"apt-fast export-gguf: error: --output {gguf_file} exists; pass --overwrite to replace it")
    _ok(capsys, ["export-gguf", "--model-path", tiny_model_dir, "--output", gguf_file, "--overwrite"])

    assert _error(capsys, ["import-gguf", "--input", gguf_file, "--output-dir", tiny_model_dir]) == (
        f"apt-fast import-gguf: error: --output-dir {tiny_model_dir} already holds a model; pass --overwrite to "
        f"replace it")
    _ok(capsys, ["import-gguf", "--input", gguf_file, "--output-dir", tiny_model_dir, "--overwrite"])

    ollama = tmp_path / "ollama"
    ollama.mkdir()
    (ollama / "Modelfile").write_text("mine")
    assert _error(capsys, ["export-ollama", "--model-path", tiny_model_dir, "--output-dir", str(ollama)]) == (
        f"apt-fast export-ollama: error: --output-dir {ollama} already holds Modelfile; pass --overwrite to "
        f"replace them")
    assert (ollama / "Modelfile").read_text() == "mine" and os.listdir(ollama) == ["Modelfile"]
    _ok(capsys, ["export-ollama", "--model-path", tiny_model_dir, "--output-dir", str(ollama), "--overwrite"])

    results = tmp_path / "bench.json"
    results.write_text("{}")
    assert _error(capsys, ["bench", "--json", str(results)]) == (
        f"apt-fast bench: error: --json {results} exists; pass --overwrite to replace it")  # before any case runs


@pytest.mark.parametrize("make_bad, message", [
    (lambda tmp: (tmp / "file", tmp / "file" / "out"), "cannot be created, {tmp}/file is not a directory"),
    (lambda tmp: (tmp / "file", tmp / "file"), "is a file, expected a directory"),
    (lambda tmp: (None, "/proc/apt-fast-test"), "cannot be created in /proc (No such file or directory)"),
])
def test_unwritable_save_path_fails_before_loading(tmp_path, train_file, tiny_model_dir, nothing_loaded, capsys,
                                                    make_bad, message):
    file, save_path = make_bad(tmp_path)
    if file is not None:
        file.write_text("the user's")
    line = _error(capsys, ["fine-tune", "--model-path", tiny_model_dir, "--data-path", train_file,
                           "--save-path", str(save_path)])
    assert line == f"apt-fast fine-tune: error: --save-path {save_path}: {message.format(tmp=tmp_path)}"


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into a chmod 0o500 directory")
def test_read_only_save_path_fails_before_loading(tmp_path, train_file, tiny_model_dir, nothing_loaded, capsys):
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o500)
    assert _error(capsys, ["fine-tune", "--model-path", tiny_model_dir, "--data-path", train_file,
                           "--save-path", str(locked)]) == (
        f"apt-fast fine-tune: error: --save-path {locked}: not writable (Permission denied)")


@pytest.mark.parametrize("device, message", [
    ("tpu", "--device must be cpu, cuda, cuda:N or auto, got 'tpu'"),
    pytest.param("cuda", "--device cuda: CUDA is not available (this torch is a CPU-only build); use --device cpu",
                 marks=pytest.mark.skipif(__import__("torch").version.cuda is not None, reason="a CUDA build")),
])
def test_bad_device_fails_before_loading(tmp_path, train_file, tiny_model_dir, nothing_loaded, capsys, device, message):
    for command in (["fine-tune", "--model-path", tiny_model_dir, "--save-path", str(tmp_path / "out")],
                    ["evaluate", "--model-path", tiny_model_dir]):
        assert _error(capsys, [*command, "--data-path", train_file, "--device", device]) == (
            f"apt-fast {command[0]}: error: {message}")


def test_device_auto_is_the_default(tmp_path, train_file, tiny_model_dir, capsys):
    assert main(["evaluate", "--model-path", tiny_model_dir, "--data-path", train_file, "--device", "auto"]) == 0
    assert "loss: " in capsys.readouterr().out


def test_full_disk_while_writing_is_one_line(tmp_path, tiny_model_dir, monkeypatch, capsys):
    output = tmp_path / "m.gguf"
    output.write_bytes(b"previous")

    def full_disk(model, path, *args, **kwargs):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), f"{path}.part")

    monkeypatch.setattr("apt_fast.export.checkpoint.export_gguf", full_disk)
    assert _error(capsys, ["export-gguf", "--model-path", tiny_model_dir, "--output", str(output), "--overwrite"]) == (
        f"apt-fast export-gguf: error: {output}.part: No space left on device")
    assert output.read_bytes() == b"previous"


def test_unwritable_save_at_the_end_of_training_is_one_line(tmp_path, train_file, tiny_model_dir, monkeypatch,
                                                             capsys):
    """The issue's case: training ran, then saving the model failed; the error is one line, the last (the
    engine says which checkpoint survived; the lines before it are the engine's progress bar)."""
    from apt_fast.models.apt import APTModel

    def denied(model, directory, **kwargs):
        raise PermissionError(errno.EACCES, os.strerror(errno.EACCES), os.fspath(directory))

    monkeypatch.setattr(APTModel, "save_pretrained", denied)
    assert main(["--quiet", "fine-tune", "--model-path", tiny_model_dir, "--data-path", train_file,
                 "--save-path", str(tmp_path / "out"), "--max-steps", "2", "--batch-size", "8",
                 "--no-tensorboard"]) == 2
    err = capsys.readouterr().err
    errors = [line for line in err.splitlines() if "error" in line]
    assert "Traceback" not in err and errors == err.splitlines()[-1:], err
    assert errors[0].startswith("apt-fast fine-tune: error: ") and "Permission denied" in errors[0]


def test_a_bug_keeps_its_traceback(monkeypatch, tmp_path):
    def bug(args):
        raise TypeError("a bug")

    monkeypatch.setattr("apt_fast.commands.import_gguf.run", bug)
    with pytest.raises(TypeError, match="a bug"):
        main(["import-gguf", "--input", __file__, "--output-dir", str(tmp_path)])


def test_interrupt_is_one_line_and_exit_code_130(monkeypatch, tmp_path, capsys):
    def interrupted(args):
        raise KeyboardInterrupt

    monkeypatch.setattr("apt_fast.commands.import_gguf.run", interrupted)
    assert main(["import-gguf", "--input", __file__, "--output-dir", str(tmp_path)]) == 130
    assert capsys.readouterr().err == "apt-fast import-gguf: interrupted\n"
