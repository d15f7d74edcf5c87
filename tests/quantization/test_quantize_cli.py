"""`apt-fast quantize` end to end (and generate / chat / evaluate on its output), an already-quantized input, and
bad inputs: one line, exit code 2, naming the flag, nothing written."""

from __future__ import annotations

import io
import json
import logging
import os
import re

import pytest
import torch

import apt_fast
from apt_fast.cli import main
from apt_fast.modules.quantized_linear import Int8Linear, QuantizedEmbedding


@pytest.fixture(autouse=True)
def engine_logger_restored():
    """evaluate gives the engine's logger a handler on this test's stderr, closed after it: later tests must not
    log through it."""
    logger = logging.getLogger("apt_fast.train")
    handlers, level, propagate = list(logger.handlers), logger.level, logger.propagate
    yield
    logger.handlers[:] = handlers
    logger.setLevel(level)
    logger.propagate = propagate


@pytest.fixture
def model_dir(tmp_path, make_model, tokenizer):
    def save(**overrides):
        apt_fast.save(make_model(**overrides), tmp_path / "model", tokenizer)
        return str(tmp_path / "model")

    return save


def _run(capsys, argv) -> tuple[int, list[str], list[str]]:
    capsys.readouterr()
    code = main(argv)
    out, err = capsys.readouterr()
    return code, out.splitlines(), err.splitlines()


def test_quantize_then_generate_chat_evaluate(tmp_path, model_dir, capsys, monkeypatch):
    source, output = model_dir(), tmp_path / "new" / "quantized"
    code, out, _ = _run(capsys, ["quantize", "--model-path", source, "--scheme", "int8-dynamic", "--group-size", "32",
                                 "--include-embedding", "--output-dir", str(output)])
    assert code == 0
    assert out[0] == "apt_fast.quantize: swapped 18 module(s), left 0 alone (int8_dynamic)"
    assert len([line for line in out if line.startswith("  SQNR ")]) == 17  # every linear layer, on two inputs
    sqnr = r"  SQNR        output_projection: gaussian \d+\.\d dB, heavy_tailed \d+\.\d dB"
    assert [line for line in out if re.fullmatch(sqnr, line)]
    assert re.fullmatch(r"model in memory: [\d.]+ MiB -> [\d.]+ MiB \(0\.\d+x\)", out[-3])
    assert re.fullmatch(rf"weights file: [\d.]+ MiB -> [\d.]+ MiB \(0\.\d+x\): {source}/model.safetensors -> "
                        rf"{output}/model.safetensors", out[-2])
    assert out[-1] == f"wrote {output} (int8_dynamic, tokenizer: APTByteTokenizer)"
    assert {"config.json", "model.safetensors", "tokenizer_config.json", "README.md"} <= set(os.listdir(output))
    assert json.loads((output / "config.json").read_text())["quantization_config"]["group_size"] == 32

    model, tokenizer = apt_fast.load(output)
    assert isinstance(model.output_projection, Int8Linear) and isinstance(model.token_embedding, QuantizedEmbedding)
    ids = model.generate(torch.tensor([tokenizer.encode("hello")]), max_length=6, do_sample=False)
    code, out, _ = _run(capsys, ["generate", "--model-path", str(output), "--prompt", "hello", "--max-length", "6",
                                 "--greedy"])
    assert code == 0 and out == [tokenizer.decode(ids[0].tolist(), skip_special_tokens=True)]

    monkeypatch.setattr("sys.stdin", io.StringIO("abc\nfed\n"))
    code, out, _ = _run(capsys, ["chat", "--model-path", str(output), "--greedy", "--max-new-tokens", "4"])
    assert code == 0 and len(out) == 2  # one reply per line

    (tmp_path / "data.txt").write_text("hello world\nabc def\n")
    code, out, _ = _run(capsys, ["evaluate", "--model-path", str(output), "--data-path", str(tmp_path / "data.txt")])
    assert code == 0 and out[0].startswith("loss: ") and "samples: 2" in out[3]


@pytest.mark.parametrize("scheme, settings, layer", [
    ("int8-weight-only", [], "Int8Linear"),
    ("fp8-e5m2", ["--granularity", "tensor"], "Fp8Linear"),
])
def test_each_scheme_writes_a_loadable_model(tmp_path, model_dir, capsys, scheme, settings, layer):
    output = tmp_path / "out"
    code, out, _ = _run(capsys, ["quantize", "--model-path", model_dir(), "--scheme", scheme, *settings,
                                 "--output-dir", str(output)])
    assert code == 0
    model, _ = apt_fast.load(output)
    assert type(model.encoder_layers[0].linear1).__name__ == layer
    assert type(model.output_projection).__name__ == "Linear"  # tied: kept unless --include-embedding


def test_an_already_quantized_model_is_left_alone(tmp_path, model_dir, capsys):
    first, second = tmp_path / "first", tmp_path / "second"
    assert main(["quantize", "--model-path", model_dir(), "--output-dir", str(first)]) == 0
    code, out, err = _run(capsys, ["quantize", "--model-path", str(first), "--scheme", "fp8-e4m3",
                                   "--output-dir", str(second)])
    assert code == 0 and err == []
    assert out == [f"--model-path {first} is already quantized (int8_weight_only, 16 layers); nothing written"]
    assert not second.exists()


@pytest.mark.parametrize("arguments, message", [
    (["--scheme", "int4"], "argument --scheme: invalid choice: 'int4' (choose from 'int8-dynamic', 'int8-weight-only', "
                           "'fp8-e4m3', 'fp8-e5m2') (see --help)"),
    (["--group-size", "48"], "argument --group-size: invalid choice: 48 (choose from 32, 64, 128) (see --help)"),
    (["--group-size", "big"], "argument --group-size: invalid int value: 'big' (see --help)"),
    (["--scheme", "fp8-e4m3", "--group-size", "32"],
     "--group-size applies to the int8 schemes; --scheme fp8-e4m3 takes --granularity (tensor, row, block)"),
    (["--scheme", "int8-dynamic", "--granularity", "row"],
     "--granularity applies to the fp8 schemes; --scheme int8-dynamic takes --group-size"),
    (["--group-size", "64"],
     "--group-size 64: group_size must divide in_features of encoder_layers.0.linear2 (96), got 64"),
    (["--scheme", "fp8-e4m3", "--granularity", "block"],
     "--granularity block: group_size must divide in_features of encoder_layers.0.linear2 (96), got 128"),
])
def test_bad_settings_are_one_line(tmp_path, model_dir, capsys, arguments, message):
    output = tmp_path / "out"
    code, out, err = _run(capsys, ["quantize", "--model-path", model_dir(d_ff=96), "--output-dir", str(output),
                                   *arguments])
    assert code == 2 and out == []
    assert err == [f"apt-fast quantize: error: {message}"]
    assert not output.exists()


def test_an_existing_model_is_replaced_only_with_overwrite(tmp_path, model_dir, capsys):
    source, output = model_dir(), tmp_path / "out"
    assert main(["quantize", "--model-path", source, "--output-dir", str(output)]) == 0
    written = (output / "model.safetensors").read_bytes()
    code, _, err = _run(capsys, ["quantize", "--model-path", source, "--scheme", "int8-dynamic",
                                 "--output-dir", str(output)])
    assert code == 2
    assert err == [f"apt-fast quantize: error: --output-dir {output} already holds a model; pass --overwrite to "
                   f"replace it"]
    assert (output / "model.safetensors").read_bytes() == written
    assert main(["quantize", "--model-path", source, "--scheme", "int8-dynamic", "--output-dir", str(output),
                 "--overwrite"]) == 0
    assert apt_fast.load(output)[0].config.quantization_config["scheme"] == "int8_dynamic"
