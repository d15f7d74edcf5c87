"""Export every type, read it back with gguf-py and with apt_fast, and compare the logits."""

from __future__ import annotations

import os

import numpy as np
import pytest
import torch

gguf = pytest.importorskip("gguf")

import apt_fast  # noqa: E402
from apt_fast.export import export_gguf, load_gguf, read_gguf  # noqa: E402
from apt_fast.gguf.tensor_names import gguf_name  # noqa: E402

ALL_TYPES = ["f32", "f16", "bf16", "q8_0", "q4_0", "q4_1", "q5_0", "q5_1"]


def _reference_roundtrip(model, qtype: str, make_model):
    """The model with every weight matrix passed through gguf-py's own quantize + dequantize."""
    reference = make_model()
    reference.load_state_dict(model.state_dict())
    if qtype == "f32":
        return reference
    ggml = gguf.GGMLQuantizationType[qtype.upper()]
    with torch.no_grad():
        for key, value in reference.state_dict().items():
            if value.ndim == 2 and key.endswith(".weight") and key != "output_projection.weight":
                data = value.numpy().astype(np.float32)
                restored = gguf.quants.dequantize(gguf.quants.quantize(data, ggml), ggml)
                value.copy_(torch.from_numpy(np.asarray(restored, dtype=np.float32).reshape(value.shape)))
    return reference


@pytest.mark.parametrize("qtype", ALL_TYPES)
def test_roundtrip(tmp_path, model, tokenizer, batch, qtype, make_model, run):
    path = tmp_path / f"apt-{qtype}.gguf"
    export_gguf(model, path, qtype, tokenizer, progress=False)

    reader = gguf.GGUFReader(path)  # the reference reader accepts the file
    names = {t.name: t for t in reader.tensors}
    assert "output.weight" not in names and "token_embd.weight" in names  # tied: stored once
    assert names["enc.blk.0.attn_norm.weight"].tensor_type == gguf.GGMLQuantizationType.F32
    assert names["dec.blk.1.cross_attn_q.bias"].tensor_type == gguf.GGMLQuantizationType.F32
    assert names["dec.blk.1.cross_attn_q.weight"].tensor_type == gguf.GGMLQuantizationType[qtype.upper()]
    assert reader.fields["general.architecture"].contents() == "apt"
    assert reader.fields["apt.attention.head_count"].contents() == 2
    assert reader.fields["apt.decoder_block_count"].contents() == 2
    assert reader.fields["tokenizer.ggml.tokens"].contents()[:3] == ["<pad>", "<s>", "</s>"]

    imported, imported_tokenizer = apt_fast.load(path)
    ignored = ("transformers_version", "quantization_config")  # q8_0 loads int8: test_gguf_q8_0.py
    fields = lambda config: {k: v for k, v in config.to_dict().items() if k not in ignored}
    assert fields(imported.config) == fields(model.config)
    assert imported_tokenizer.encode("héllo") == tokenizer.encode("héllo")
    expected, actual = run(model, batch), run(imported, batch)
    relative = ((actual - expected).norm() / expected.norm()).item()
    if qtype == "f32":
        assert torch.equal(actual, expected)
    else:  # exactly the error of the format: gguf-py's own round trip gives the same logits
        reference = run(_reference_roundtrip(model, qtype, make_model), batch) if qtype not in ("f16", "bf16") else None
        if reference is not None:  # q8_0 runs as int8 weight-only, activations in 16-bit fixed point (1.6e-5 here)
            torch.testing.assert_close(actual, reference, rtol=0, atol=1e-4 if qtype == "q8_0" else 1e-6)
        bound = {"f16": 1e-3, "bf16": 1e-2, "q8_0": 2e-2}.get(qtype, 0.3)
        assert relative < bound, f"{qtype}: logits relative error {relative:.3e} >= {bound}"


def test_file_layout(tmp_path, model, tokenizer):
    path = tmp_path / "m.gguf"
    export_gguf(model, path, "q4_0", tokenizer, progress=False)
    file = read_gguf(path)
    assert file.version == 3
    assert list(file.tensors) == [gguf_name(k) for k in model.state_dict() if k != "output_projection.weight"]
    assert file.tensors["position_embd.weight"].shape == (24, 64)
    assert file.metadata["general.file_type"] == 2 and file.metadata["general.quantization_version"] == 2
    assert file.metadata["apt.autopoietic.epsilon"] == 0.08 and file.metadata["apt.autopoietic.sr_hidden_size"] == 16
    assert file.metadata["tokenizer.ggml.eos_token_id"] == 2


def test_untied_taylor_and_unaligned_rows(tmp_path, tokenizer, batch, make_model, run):
    model = make_model(tie_word_embeddings=False, taylor_parameters=True, d_ff=80)  # 80 % 32 != 0
    with torch.no_grad():
        model.output_projection.weight.mul_(0.5)
    path = tmp_path / "m.gguf"
    export_gguf(model, path, "q8_0", tokenizer, progress=False)
    types = {t.name: t.tensor_type.name for t in gguf.GGUFReader(path).tensors}
    assert types["output.weight"] == "Q8_0" and types["taylor_alpha"] == "F32"
    assert types["enc.blk.0.ffn_down.weight"] == "F16"  # rows of 80: no q8_0 blocks, F16 instead
    assert types["enc.blk.0.ffn_up.weight"] == "Q8_0"
    imported, _ = load_gguf(path)
    assert not imported.config.tie_word_embeddings and imported.config.taylor_parameters
    assert imported.taylor_alpha.item() == model.taylor_alpha.item()
    relative = ((run(imported, batch) - run(model, batch)).norm() / run(model, batch).norm()).item()
    assert relative < 2e-2


@pytest.mark.parametrize("kind", ["chinese", "hlbd", "none"])
def test_other_tokenizers(tmp_path, kind, make_model):
    from apt_fast.models.apt.tokenization_char import ChineseCharTokenizer, HLBDCharTokenizer

    tokenizer = {"chinese": lambda: ChineseCharTokenizer({"<|pad|>": 0, " ": 2, "a": 3, "中": 4, "<|endoftext|>": 2}),
                 "hlbd": lambda: HLBDCharTokenizer({"[PAD]": 0, "[UNK]": 1, "[BOS]": 2, "[EOS]": 3, "x": 4}),
                 "none": lambda: None}[kind]()
    model = make_model(vocab_size=32)
    path = tmp_path / "m.gguf"
    export_gguf(model, path, "f32", tokenizer, progress=False)
    _, restored = load_gguf(path)
    if tokenizer is None:
        assert restored is None
    else:
        assert type(restored) is type(tokenizer)
        assert restored.encode("a 中x") == tokenizer.encode("a 中x")
        tokens = gguf.GGUFReader(path).fields["tokenizer.ggml.tokens"].contents()
        assert tokens[1] in ("[UNUSED_1]", "[UNK]")


class _Boom(RuntimeError):
    pass


@pytest.mark.parametrize("error", [_Boom, KeyboardInterrupt])
def test_failed_export_leaves_nothing_and_keeps_the_old_file(tmp_path, model, tokenizer, monkeypatch, error):
    from apt_fast.export import writer

    path = tmp_path / "m.gguf"
    path.write_bytes(b"previous contents")
    calls = []
    real_convert = writer.convert

    def failing_convert(tensor, qtype, *scratch):
        calls.append(1)
        if len(calls) == 5:  # mid-export, after the header and four tensors were written
            raise error("simulated failure")
        return real_convert(tensor, qtype, *scratch)

    monkeypatch.setattr(writer, "convert", failing_convert)
    with pytest.raises(error):
        export_gguf(model, path, "q8_0", tokenizer, progress=False)
    assert sorted(os.listdir(tmp_path)) == ["m.gguf"]
    assert path.read_bytes() == b"previous contents"


def test_export_rejects_bad_arguments(tmp_path, model):
    with pytest.raises(ValueError, match="unknown GGUF type 'q3_k'"):
        export_gguf(model, tmp_path / "m.gguf", "q3_k")
    with pytest.raises(ValueError, match="export_gguf needs an apt_fast APTModel, got Linear"):
        export_gguf(torch.nn.Linear(2, 2), tmp_path / "m.gguf")
    with pytest.raises(FileNotFoundError, match="output directory .*missing does not exist"):
        export_gguf(model, tmp_path / "missing" / "m.gguf")
    assert os.listdir(tmp_path) == []
