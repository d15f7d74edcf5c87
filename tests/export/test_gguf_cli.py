"""The GGUF commands end to end on a tiny model, and their one-line errors for bad input."""

from __future__ import annotations

import os

import pytest

from apt_fast.cli import main


@pytest.fixture
def model_dir(tmp_path, model, tokenizer):
    from apt_fast.models.apt.loading import save

    path = tmp_path / "model"
    save(model, path, tokenizer)
    return path


def test_export_import_generate(tmp_path, model_dir, capsys):
    out = tmp_path / "out"
    out.mkdir()
    gguf_path = out / "m.gguf"
    assert main(["export-gguf", "--model-path", str(model_dir), "--output", str(gguf_path), "--type", "q4_0"]) == 0
    assert main(["import-gguf", "--input", str(gguf_path), "--output-dir", str(out)]) == 0
    assert {"config.json", "model.safetensors", "tokenizer_config.json"} <= set(os.listdir(out))
    capsys.readouterr()
    for source in (gguf_path, out):  # a .gguf file and the imported directory
        assert main(["generate", "--model-path", str(source), "--prompt", "hi", "--max-length", "4", "--greedy"]) == 0
    first, second = capsys.readouterr().out.splitlines()[-2:]
    assert first == second  # the imported directory holds the GGUF's (dequantized) weights


def test_export_ollama(tmp_path, model_dir):
    out = tmp_path / "ollama"
    out.mkdir()
    assert main(["export-ollama", "--model-path", str(model_dir), "--output-dir", str(out)]) == 0
    assert sorted(os.listdir(out)) == ["Modelfile", "README.md", "apt-q8_0.gguf"]
    modelfile = (out / "Modelfile").read_text()
    assert modelfile.startswith('FROM ./apt-q8_0.gguf\nTEMPLATE """')
    assert 'PARAMETER stop "</s>"' in modelfile and "PARAMETER top_k 50" in modelfile
    readme = (out / "README.md").read_text()
    assert "llama.cpp and Ollama cannot run this model" in readme and "apt-fast generate" in readme


def _error(capsys, argv) -> str:
    assert main(argv) == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1, lines
    return lines[0]


def test_bad_input(tmp_path, model_dir, capsys):
    before = sorted(os.listdir(tmp_path))
    assert _error(capsys, ["export-gguf", "--model-path", str(model_dir), "--output", str(tmp_path / "m.gguf"),
                           "--type", "q3_k"]).startswith(
        "apt-fast export-gguf: error: argument --type: invalid choice: 'q3_k'")
    under_a_file = model_dir / "config.json" / "no"
    assert _error(capsys, ["export-gguf", "--model-path", str(model_dir), "--output", str(under_a_file / "m.gguf")]) \
        == f"apt-fast export-gguf: error: --output {under_a_file / 'm.gguf'}: cannot be created, " \
           f"{model_dir / 'config.json'} is not a directory"
    assert _error(capsys, ["export-ollama", "--model-path", str(model_dir), "--output-dir", str(under_a_file)]) \
        == f"apt-fast export-ollama: error: --output-dir {under_a_file}: cannot be created, " \
           f"{model_dir / 'config.json'} is not a directory"
    not_apt = tmp_path / "bert"
    not_apt.mkdir()
    (not_apt / "config.json").write_text('{"model_type": "bert"}')
    assert "not a model directory" in _error(
        capsys, ["export-gguf", "--model-path", str(not_apt), "--output", str(tmp_path / "m.gguf")])
    corrupted = tmp_path / "corrupted.gguf"
    corrupted.write_bytes(b"GGUF" + bytes(40))
    assert _error(capsys, ["import-gguf", "--input", str(corrupted), "--output-dir", str(tmp_path)]) \
        == f"apt-fast import-gguf: error: {corrupted}: unsupported GGUF version 0 (apt_fast reads versions 2 and 3)"
    corrupted.unlink()
    assert sorted(os.listdir(tmp_path)) == sorted(before + ["bert"])  # nothing else left behind
