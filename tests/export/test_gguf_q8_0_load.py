"""apt_fast.load of a Q8_0 file keeps the weight matrices int8 (weight-only Int8Linear, group size 32, the file's
codes and scales), so the model takes about the file's size in memory; other types still load dequantized."""

from __future__ import annotations

import itertools
import json
import os
import subprocess
import sys

import numpy as np
import pytest
import torch
from torch import nn

import apt_fast
from apt_fast.export import export_gguf, read_gguf
from apt_fast.gguf.tensor_names import gguf_name
from apt_fast.modules.quantized_linear import Int8Linear, QuantizedEmbedding

gguf = pytest.importorskip("gguf")


def _dequantized(file, name: str) -> torch.Tensor:
    info = file.tensors[name]
    values = gguf.quants.dequantize(file.raw(name).reshape(info.shape[0], -1), gguf.GGMLQuantizationType.Q8_0)
    return torch.from_numpy(np.asarray(values, dtype=np.float32))


def test_q8_0_matrices_load_as_int8(tmp_path, model, tokenizer):
    path = tmp_path / "m.q8_0.gguf"
    export_gguf(model, path, "q8_0", tokenizer, progress=False)
    loaded, _ = apt_fast.load(path)
    file = read_gguf(path)

    linears = [name for name, module in model.named_modules() if isinstance(module, nn.Linear)]
    assert not [name for name, module in loaded.named_modules() if type(module) is nn.Linear]
    for name in linears:
        layer = loaded.get_submodule(name)
        assert isinstance(layer, Int8Linear) and layer.group_size == 32 and layer.activation_bits == 16, name
        codes, scales = layer.quantized()
        assert codes.dtype == torch.int8 and scales.dtype == torch.float32
        source = "token_embd.weight" if name == "output_projection" else gguf_name(f"{name}.weight")
        assert torch.equal(layer.dequantized(), _dequantized(file, source)), name  # the file's values, exactly
    assert isinstance(loaded.token_embedding, QuantizedEmbedding)
    assert loaded.token_embedding.projection is loaded.output_projection
    assert loaded.config.quantization_config == {
        "quant_method": "apt_fast", "scheme": "int8_weight_only", "group_size": 32, "modules": sorted(linears),
        "include_embedding": True}
    ids = loaded.generate(torch.tensor([tokenizer.encode("hi")]), max_length=4, do_sample=False)
    assert ids.shape[0] == 1 and ids.shape[1] >= 1


def test_an_untied_q8_0_embedding_is_dequantized(tmp_path, make_model, tokenizer):
    model = make_model(tie_word_embeddings=False)
    path = tmp_path / "m.q8_0.gguf"
    export_gguf(model, path, "q8_0", tokenizer, progress=False)
    loaded, _ = apt_fast.load(path)
    assert type(loaded.token_embedding) is nn.Embedding and isinstance(loaded.output_projection, Int8Linear)
    assert torch.equal(loaded.token_embedding.weight, _dequantized(read_gguf(path), "token_embd.weight"))
    assert not loaded.config.quantization_config["include_embedding"]


@pytest.mark.parametrize("qtype", ["f16", "q4_0", "q5_1"])
def test_other_types_still_load_dequantized(tmp_path, model, tokenizer, qtype):
    path = tmp_path / f"m.{qtype}.gguf"
    export_gguf(model, path, qtype, tokenizer, progress=False)
    loaded, _ = apt_fast.load(path)
    assert type(loaded.output_projection) is nn.Linear and type(loaded.token_embedding) is nn.Embedding
    assert loaded.output_projection.weight.dtype == torch.float32
    assert getattr(loaded.config, "quantization_config", None) is None


def test_a_q8_0_model_saves_and_loads_as_int8(tmp_path, model, tokenizer, batch, run):
    export_gguf(model, tmp_path / "m.gguf", "q8_0", tokenizer, progress=False)
    loaded, _ = apt_fast.load(tmp_path / "m.gguf")
    apt_fast.save(loaded, tmp_path / "saved")
    again, _ = apt_fast.load(tmp_path / "saved")
    assert json.loads((tmp_path / "saved" / "config.json").read_text())["quantization_config"]["group_size"] == 32
    assert isinstance(again.encoder_layers[0].linear1, Int8Linear)
    assert torch.equal(run(again, batch), run(loaded, batch))


MEMORY_CHECK = """
import gc, itertools, sys, warnings
import apt_fast

def status(key):
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) * 1024 for line in f if line.startswith(key + ":"))

warnings.simplefilter("ignore")
apt_fast.load(sys.argv[2])  # first use: imports, thread pools
gc.collect()
with open("/proc/self/clear_refs", "w") as f:
    f.write("5")  # the peak (VmHWM) starts again from here
start = status("VmRSS")
model, _ = apt_fast.load(sys.argv[1])
print(status("VmRSS") - start, status("VmHWM") - start)
"""


def test_memory_stays_close_to_the_file_size(tmp_path, make_model, model, tokenizer):
    """A float32 model would take 4x the Q8_0 file; the int8 model takes about the file's size, also at its peak
    while loading (the mapped file, the model and one layer in flight)."""
    big = make_model(vocab_size=4096, d_model=512, num_heads=8, d_ff=2048, num_encoder_layers=1, num_decoder_layers=1)
    path, tiny = tmp_path / "big.q8_0.gguf", tmp_path / "tiny.q8_0.gguf"
    export_gguf(big, path, "q8_0", tokenizer, progress=False)
    export_gguf(model, tiny, "q8_0", tokenizer, progress=False)
    size = os.path.getsize(path)
    loaded, _ = apt_fast.load(path)
    held = sum(t.numel() * t.element_size() for t in itertools.chain(loaded.parameters(), loaded.buffers()))
    assert held < 1.25 * size, f"model {held / 2**20:.1f} MiB for a {size / 2**20:.1f} MiB file"

    done = subprocess.run([sys.executable, "-c", MEMORY_CHECK, str(path), str(tiny)], capture_output=True, text=True,
                          timeout=300, check=True)
    resident, peak = map(int, done.stdout.split())
    assert resident < 2 * size, f"resident memory grew {resident / 2**20:.1f} MiB for a {size / 2**20:.1f} MiB file"
    assert peak < 3 * size, f"peak memory grew {peak / 2**20:.1f} MiB for a {size / 2**20:.1f} MiB file"
