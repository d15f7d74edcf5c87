"""Checkpoint formats through ``load`` (APT_SPEC.md §5.1), save/load round trips and bad-input errors."""

from __future__ import annotations

import json
import os

import pytest
import torch
from torch.nn.utils import prune

from apt_fast.atomic import atomic_write
from apt_fast.models.apt import APTConfig, APTModel
from apt_fast.models.apt.loading import CheckpointError, load, save
from apt_fast.models.apt.tokenization_byte import APTByteTokenizer
from apt_fast.models.apt.tokenization_char import ChineseCharTokenizer, HLBDCharTokenizer

SIZES = {"vocab_size": 100, "d_model": 32, "num_heads": 2, "num_encoder_layers": 1, "num_decoder_layers": 2,
         "d_ff": 48, "max_seq_len": 32, "sr_ratio": 2}
# What upstream APTConfig.to_dict writes (a subset, plus trainer fields apt_fast ignores).
UPSTREAM_CONFIG = {**SIZES, "dropout": 0.2, "epsilon": 2.0, "alpha": 0.001, "beta": 0.001, "init_tau": 1.3,
                   "activation": "gelu", "pad_token_id": 0, "bos_token_id": 1, "eos_token_id": 2, "base_lr": 4e-5,
                   "warmup_steps": 1000, "weight_decay": 0.01, "layer_norm_eps": 1e-5, "tokenizer_type": "chinese-char",
                   "language": "zh", "use_dbc_dac": False}


def _model(**overrides) -> APTModel:
    torch.manual_seed(0)
    model = APTModel(APTConfig(**{**UPSTREAM_CONFIG, **overrides}))
    with torch.no_grad():  # make tau and the norms non-trivial so a wrong load would show
        for name, param in model.named_parameters():
            if "tau" in name or "norm" in name:
                param.add_(0.1 * torch.randn_like(param))
    return model.eval()


def _small_chinese_tokenizer() -> ChineseCharTokenizer:
    encoder = {"<|pad|>": 0, **{chr(c): c - 30 for c in range(32, 127)}, "深": 97, "度": 98, "<|endoftext|>": 2}
    return ChineseCharTokenizer(encoder)


def _inputs():
    torch.manual_seed(1)
    src = torch.randint(3, 100, (2, 7))
    src[1, -2:] = 0
    return src, torch.randint(3, 100, (2, 5))


def _assert_same_logits(writer, loaded):
    src, tgt = _inputs()
    with torch.no_grad():
        assert torch.equal(writer(src, tgt, src_key_padding_mask=src == 0),
                           loaded(src, tgt, src_key_padding_mask=src == 0))


def _write_upstream_directory(path, model, config=UPSTREAM_CONFIG):
    os.makedirs(path / "tokenizer")
    torch.save(model.state_dict(), path / "model.pt")
    (path / "config.json").write_text(json.dumps(config, indent=2))
    _small_chinese_tokenizer()._save_files(str(path / "tokenizer"))  # upstream writes only vocab.json
    return path


def _write_checkpoint_manager(save_dir, model, config):
    os.makedirs(save_dir / "checkpoints")
    optimizer = torch.optim.AdamW(model.parameters())
    file = save_dir / "checkpoints" / "apt_model_epoch3_step120_best.pt"
    torch.save({"epoch": 3, "global_step": 120, "model_state_dict": model.state_dict(),
                "optimizer_state_dict": optimizer.state_dict(), "scheduler_state_dict": None,
                "loss_history": [2.5, 2.1], "metrics": {"val_loss": 2.0}, "config": config}, file)
    _small_chinese_tokenizer()._save_files(str(save_dir / "tokenizer"))
    return file


def _write_hlbd(file, model, config):
    tokenizer = HLBDCharTokenizer.with_special_tokens()
    torch.save({"model_state_dict": model.state_dict(), "config": config, **tokenizer.checkpoint_fields(),
                "epoch": 10, "losses": [1.0], "grad_norms": [0.5], "learning_rates": [1e-4]}, file)
    return file


def test_save_load_round_trip_is_bit_exact(tmp_path):
    model = _model(use_dbc_dac=True)
    save(model, tmp_path, APTByteTokenizer())
    assert not [f for f in os.listdir(tmp_path) if f.startswith(".tmp")]
    loaded, tokenizer = load(tmp_path)
    assert isinstance(tokenizer, APTByteTokenizer)
    assert list(loaded.state_dict()) == list(model.state_dict())
    assert all(torch.equal(a, b) for a, b in zip(loaded.state_dict().values(), model.state_dict().values()))
    assert loaded.output_projection.weight is loaded.token_embedding.weight
    assert loaded.config.to_dict() == model.config.to_dict() and loaded.num_gradient_hooks == model.num_gradient_hooks
    _assert_same_logits(model, loaded)


def test_save_stores_tied_weight_once_and_auto_model_loads(tmp_path):
    from safetensors import safe_open
    from transformers import AutoModel

    model = _model()
    model.save_pretrained(tmp_path)
    with safe_open(tmp_path / "model.safetensors", "pt") as f:
        keys = set(f.keys())
    assert "positional_encoding.pe" in keys and len(keys & {"token_embedding.weight", "output_projection.weight"}) == 1
    auto = AutoModel.from_pretrained(tmp_path).eval()
    assert isinstance(auto, APTModel) and auto.output_projection.weight is auto.token_embedding.weight
    _assert_same_logits(model, auto)


def test_upstream_directory_with_taylor_parameters(tmp_path):
    model = _model(taylor_parameters=True)
    loaded, tokenizer = load(_write_upstream_directory(tmp_path, model))
    assert list(loaded.state_dict()) == list(model.state_dict())
    assert list(loaded.state_dict())[:2] == ["taylor_epsilon", "taylor_alpha"]
    assert loaded.config.taylor_parameters and loaded.config.epsilon == 2.0 and loaded.config.sr_ratio == 2
    assert isinstance(tokenizer, ChineseCharTokenizer) and tokenizer.encode("深 度") == [97, 2, 98]
    _assert_same_logits(model, loaded)


def test_upstream_directory_shapes_inferred_from_weights(tmp_path):
    """Only num_heads and epsilon are required; sizes come from the weights, the rest from upstream APTConfig."""
    model = _model(init_tau=1.3)
    loaded, _ = load(_write_upstream_directory(tmp_path, model, {"num_heads": 2, "epsilon": 2.0}))
    assert {k: getattr(loaded.config, k) for k in SIZES} == SIZES
    assert loaded.config.use_dbc_dac is False and loaded.config.bos_token_id == 1
    _assert_same_logits(model, loaded)


def test_checkpoint_manager_file(tmp_path):
    model = _model()
    loaded, tokenizer = load(_write_checkpoint_manager(tmp_path, model, UPSTREAM_CONFIG))
    assert isinstance(tokenizer, ChineseCharTokenizer)
    _assert_same_logits(model, loaded)


def test_hlbd_single_file(tmp_path):
    model = _model(use_dbc_dac=True, bos_token_id=101, eos_token_id=102)
    hlbd_config = {k: UPSTREAM_CONFIG[k] for k in ("vocab_size", "d_model", "max_seq_len", "num_encoder_layers",
                                                    "num_decoder_layers", "num_heads", "d_ff", "dropout", "epsilon")}
    loaded, tokenizer = load(_write_hlbd(tmp_path / "hlbd.pt", model, hlbd_config))
    assert loaded.config.bos_token_id == 101 and loaded.config.use_dbc_dac, "APTModelConfiguration defaults"
    assert isinstance(tokenizer, HLBDCharTokenizer) and tokenizer.encode("x") == [2, 1, 3]
    _assert_same_logits(model, loaded)


def test_pruned_checkpoint(tmp_path):
    """weight = orig * mask; a pruned embedding unties the output projection (it keeps the unpruned orig)."""
    model = _model(taylor_parameters=True)
    prune.l1_unstructured(model.encoder_layers[0].linear1, "weight", amount=0.5)
    prune.l1_unstructured(model.token_embedding, "weight", amount=0.3)
    assert "token_embedding.weight_orig" in model.state_dict()
    loaded, _ = load(_write_upstream_directory(tmp_path, model))
    assert not loaded.config.tie_word_embeddings
    assert loaded.output_projection.weight is not loaded.token_embedding.weight
    _assert_same_logits(model, loaded)


def test_missing_num_heads_or_epsilon_is_an_error(tmp_path):
    model = _model()
    file = _write_hlbd(tmp_path / "hlbd.pt", model, {"d_model": 32, "epsilon": 2.0})
    with pytest.raises(CheckpointError,
                       match=r"hlbd.pt: the config has no 'num_heads', and num_heads cannot be inferred"):
        load(file)
    _assert_same_logits(model, load(file, config_overrides={"num_heads": 2})[0])
    file = _write_checkpoint_manager(tmp_path / "run", model, None)
    with pytest.raises(CheckpointError, match="the config has no 'num_heads'"):
        load(file)
    with pytest.raises(CheckpointError, match="the config has no 'epsilon'"):
        load(file, config_overrides={"num_heads": 2})


def test_weights_not_matching_config(tmp_path):
    _write_upstream_directory(tmp_path, _model(), {**UPSTREAM_CONFIG, "d_ff": 64, "num_encoder_layers": 12})
    with pytest.raises(CheckpointError, match=r"model.pt: the config contradicts the weights: "
                       r"num_encoder_layers is 12 in the config, 1 in the weights; "
                       r"d_ff is 64 in the config, 48 in the weights"):
        load(tmp_path)


def test_unknown_formats(tmp_path):
    with pytest.raises(CheckpointError, match="unknown checkpoint format: the directory has neither"):
        load(tmp_path)
    torch.save({"weights": torch.zeros(2)}, tmp_path / "other.pt")
    with pytest.raises(CheckpointError, match="other.pt: unknown checkpoint format"):
        load(tmp_path / "other.pt")
    torch.save({"model_state_dict": {"encoder.weight": torch.zeros(2)}}, tmp_path / "foreign.pt")
    with pytest.raises(CheckpointError,
                       match="no token_embedding.weight in the weights; this is not an APT checkpoint"):
        load(tmp_path / "foreign.pt")
    with pytest.raises(CheckpointError, match="no such file or directory"):
        load(tmp_path / "missing.pt")


def test_truncated_files(tmp_path):
    model = _model()
    directory = _write_upstream_directory(tmp_path / "upstream", model)
    data = (directory / "model.pt").read_bytes()
    (directory / "model.pt").write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match=r"model.pt: cannot be read with torch.load\(weights_only=True\)"):
        load(directory)
    save(model, tmp_path / "ours")
    data = (tmp_path / "ours" / "model.safetensors").read_bytes()
    (tmp_path / "ours" / "model.safetensors").write_bytes(data[:-100])
    with pytest.raises(CheckpointError, match="model.safetensors: cannot read the safetensors file"):
        load(tmp_path / "ours")


def test_pickled_code_is_refused(tmp_path):
    model = _model()
    torch.save({"model_state_dict": model.state_dict(), "config": UPSTREAM_CONFIG, "extra": APTByteTokenizer()},
               tmp_path / "x.pt")
    with pytest.raises(CheckpointError, match=r"weights_only=True"):
        load(tmp_path / "x.pt")


def test_pruning_mask_without_orig(tmp_path):
    state = _model().state_dict()
    state["encoder_layers.0.linear1.weight_mask"] = torch.ones_like(state.pop("encoder_layers.0.linear1.weight"))
    torch.save({"model_state_dict": state, "config": UPSTREAM_CONFIG}, tmp_path / "bad.pt")
    with pytest.raises(CheckpointError, match="pruning mask encoder_layers.0.linear1.weight_mask has no"):
        load(tmp_path / "bad.pt")


def test_atomic_write_keeps_the_old_file(tmp_path):
    target = tmp_path / "file.txt"
    target.write_text("old")

    def failing(tmp):
        with open(tmp, "w") as f:
            f.write("half")
        raise OSError("disk full")

    with pytest.raises(OSError, match="disk full"):
        atomic_write(target, failing)
    assert target.read_text() == "old" and os.listdir(tmp_path) == ["file.txt"]


@pytest.mark.parametrize("tokenizer", [APTByteTokenizer(),
                                       HLBDCharTokenizer({"[PAD]": 0, "[UNK]": 1, "[BOS]": 2, "[EOS]": 3, "天": 4}),
                                       ChineseCharTokenizer.fixed_range()])
def test_tokenizer_save_load(tmp_path, tokenizer):
    from apt_fast.models.apt.tokenization_apt import load_tokenizer

    tokenizer.save_pretrained(tmp_path)
    loaded = load_tokenizer(tmp_path)
    assert type(loaded) is type(tokenizer) and loaded.vocab_size == tokenizer.vocab_size
    text = "天 ok é"
    assert loaded.encode(text) == tokenizer.encode(text)
    assert loaded.decode(loaded.encode(text)) == tokenizer.decode(tokenizer.encode(text))
    batch = loaded([text, "天"])
    assert batch["input_ids"].shape == batch["attention_mask"].shape


def test_byte_tokenizer_is_lossless():
    tokenizer = APTByteTokenizer()
    text = "Autopoietic 变换器 ✓"
    assert tokenizer.decode(tokenizer.encode(text)) == text
    assert max(tokenizer.encode(text)) < tokenizer.vocab_size == 259
    batch = tokenizer(["ab", "abcd"])
    assert batch["input_ids"].tolist() == [[100, 101, 0, 0], [100, 101, 102, 103]]
    assert batch["attention_mask"].tolist() == [[1, 1, 0, 0], [1, 1, 1, 1]]
