"""APTModel structure and behaviour: state_dict layout (spec §7), forward conventions, hooks, generate."""

from __future__ import annotations

import pytest
import torch

from apt_fast.models.apt import APTConfig, APTModel
from apt_fast.models.apt.generation import apply_repetition_penalty, top_k_filter, top_p_filter
from apt_fast.models.apt.gradient_hooks import dbc_dac_hook

ATTENTION_KEYS = [
    "tau", "q_proj.weight", "q_proj.bias", "k_proj.weight", "k_proj.bias", "v_proj.weight", "v_proj.bias",
    "out_proj.weight", "out_proj.bias", "sr_conv1.weight", "sr_conv1.bias", "sr_layernorm.weight",
    "sr_layernorm.bias", "sr_conv2.weight", "sr_conv2.bias",
]
FFN_KEYS = ["linear1.weight", "linear1.bias", "linear2.weight", "linear2.bias"]


def _norms(prefix, count):
    return [f"{prefix}norm{i}.{p}" for i in range(1, count + 1) for p in ("weight", "bias")]


def upstream_keys(taylor=False):
    """Spec §7: the exact key order of upstream's state_dict for one encoder and one decoder layer."""
    keys = ["taylor_epsilon", "taylor_alpha"] if taylor else []
    keys += ["token_embedding.weight", "positional_encoding.pe"]
    keys += [f"encoder_layers.0.self_attn.{k}" for k in ATTENTION_KEYS]
    keys += [f"encoder_layers.0.{k}" for k in FFN_KEYS] + _norms("encoder_layers.0.", 2)
    keys += [f"decoder_layers.0.{a}.{k}" for a in ("self_attn", "multihead_attn") for k in ATTENTION_KEYS]
    keys += [f"decoder_layers.0.{k}" for k in FFN_KEYS] + _norms("decoder_layers.0.", 3)
    return keys + ["encoder_norm.weight", "encoder_norm.bias", "decoder_norm.weight", "decoder_norm.bias",
                   "output_projection.weight"]


def test_state_dict_matches_upstream_layout():
    """APTModelConfiguration defaults with the spec's tiny sizes: 70 entries, 24,950 parameters, 68 hooks."""
    model = APTModel(APTConfig(vocab_size=100, d_model=32, num_heads=2, num_encoder_layers=1, num_decoder_layers=1,
                               d_ff=64))
    state = model.state_dict()
    assert list(state) == upstream_keys()
    shapes = {k: tuple(v.shape) for k, v in state.items()}
    assert shapes["positional_encoding.pe"] == (1, 2048, 32)
    assert shapes["encoder_layers.0.self_attn.tau"] == (1,)
    assert shapes["encoder_layers.0.self_attn.sr_conv1.weight"] == (16, 1, 1, 1)
    assert shapes["decoder_layers.0.multihead_attn.sr_conv2.weight"] == (1, 16, 1, 1)
    assert shapes["decoder_layers.0.linear1.weight"] == (64, 32) and shapes["output_projection.weight"] == (100, 32)
    assert all(v.dtype == torch.float32 for v in state.values())
    assert state["output_projection.weight"].data_ptr() == state["token_embedding.weight"].data_ptr()
    assert sum(p.numel() for p in model.parameters()) == 24950
    assert model.num_gradient_hooks == 68


def test_taylor_parameters_come_first():
    config = APTConfig(vocab_size=100, d_model=32, num_heads=2, num_encoder_layers=1, num_decoder_layers=1, d_ff=64,
                       taylor_parameters=True)
    model = APTModel(config)
    assert list(model.state_dict()) == upstream_keys(taylor=True)
    assert model.taylor_epsilon.shape == () and model.taylor_epsilon.item() == pytest.approx(1e-6)
    assert model.num_gradient_hooks == 68, "upstream registers the taylor parameters after the hooks"


def test_init_follows_upstream(tiny_config):
    torch.manual_seed(0)
    model = APTModel(tiny_config)
    assert torch.all(model.token_embedding.weight[tiny_config.pad_token_id] == 0)
    attn = model.encoder_layers[0].self_attn
    assert torch.all(attn.q_proj.bias == 0) and torch.all(attn.sr_conv2.bias == 0)
    assert attn.tau.item() == tiny_config.init_tau
    bound = (6 / (32 + 32)) ** 0.5  # xavier_uniform
    assert attn.q_proj.weight.abs().max() <= bound


@pytest.mark.parametrize(
    "fields, message",
    [
        ({"num_heads": 3}, r"APTConfig.d_model must be divisible by num_heads \(3\), got 32"),
        ({"num_heads": 0}, r"APTConfig.num_heads must be a positive int, got 0"),
        ({"d_model": 33, "num_heads": 1}, r"APTConfig.d_model must be even .*, got 33"),
        ({"dropout": 1.5}, r"APTConfig.dropout must be in \[0, 1\), got 1.5"),
        ({"batch_first": False}, r"APTConfig.batch_first must be True .*, got False"),
        ({"pad_token_id": 500}, r"APTConfig.pad_token_id must be None or in \[0, 100\), got 500"),
    ],
)
def test_config_validation(fields, message):
    with pytest.raises(ValueError, match=message):
        APTConfig(**{"vocab_size": 100, "d_model": 32, "num_heads": 2, **fields})


def test_forward_aliases_return_dict_and_default_target(tiny_config):
    torch.manual_seed(1)
    model = APTModel(tiny_config).eval()
    src = torch.randint(3, 100, (2, 6))
    tgt = torch.randint(3, 100, (2, 4))
    logits = model(src, tgt)
    assert torch.equal(model(query=src, key=tgt, value=tgt), logits)
    assert torch.equal(model(input_ids=src, decoder_input_ids=tgt), logits)
    assert torch.equal(model(src), model(src, src))
    out = model(src, tgt, return_dict=True)
    assert torch.equal(out["logits"], logits) and out.encoder_output.shape == (2, 6, 32)
    assert torch.equal(out.logits, model.output_projection(out.decoder_output))


def test_forward_converts_masks_to_bool(tiny_config):
    """An explicit float causal tgt_mask becomes bool (+1 where masked), unlike the automatic one."""
    torch.manual_seed(2)
    model = APTModel(tiny_config).eval()
    src, tgt = torch.randint(3, 100, (2, 6)), torch.randint(3, 100, (2, 5))
    causal = torch.triu(torch.full((5, 5), float("-inf")), diagonal=1)
    memory = model.encode(src)
    as_bool = model.output_projection(model.decode(tgt, memory, tgt_mask=causal.isinf()))
    assert torch.equal(model(src, tgt, tgt_mask=causal), as_bool)
    assert not torch.allclose(model(src, tgt, tgt_mask=causal), model(src, tgt), atol=1e-6)
    kpm = torch.tensor([[0, 0, 0, 0, 1, 1], [0] * 6])
    assert torch.equal(model(src, tgt, src_key_padding_mask=kpm), model(src, tgt, src_key_padding_mask=kpm.bool()))


def test_dbc_dac_hook_sanitises_gradients(tiny_config):
    model = APTModel(tiny_config)
    loss = model(torch.randint(3, 100, (1, 4))).sum() * float("nan")
    loss.backward()
    assert all(torch.isfinite(p.grad).all() for p in model.parameters() if p.grad is not None)
    assert model.encoder_layers[0].self_attn.sr_layernorm.weight.grad is None
    grad = torch.tensor([float("nan"), float("inf"), -float("inf"), 0.5])
    assert torch.equal(dbc_dac_hook(grad, stochastic=False, rank_ratio=0.1, threshold=1e-6),
                       torch.tensor([0.0, 1.0, -1.0, 0.5]))


def test_hooks_off_without_use_dbc_dac(tiny_config):
    tiny_config.use_dbc_dac = False
    model = APTModel(tiny_config)
    model(torch.randint(3, 100, (1, 4))).sum().mul(float("nan")).backward()
    assert model.num_gradient_hooks == 0 and model.encoder_norm.weight.grad.isnan().all()


def test_stochastic_low_rank_branch_is_opt_in(monkeypatch):
    """Upstream's defect: small min(m, n) gives rank 1, k = 0 and an all-zero gradient."""
    import apt_fast.models.apt.gradient_hooks as hooks

    grad = torch.randn(10_000, 16)
    monkeypatch.setattr(hooks.random, "random", lambda: 0.0)
    assert torch.equal(dbc_dac_hook(grad, stochastic=False, rank_ratio=0.1, threshold=1e-6), grad)
    assert torch.all(dbc_dac_hook(grad, stochastic=True, rank_ratio=0.1, threshold=1e-6) == 0)
    monkeypatch.setattr(hooks.random, "random", lambda: 0.5)
    assert torch.equal(dbc_dac_hook(grad, stochastic=True, rank_ratio=0.1, threshold=1e-6), grad)


def test_generate_restores_mode_and_stops_on_common_eos(tiny_config):
    torch.manual_seed(3)
    model = APTModel(tiny_config).train()
    src = torch.randint(3, 100, (2, 5))
    greedy = model.generate(src, max_length=4, do_sample=False)
    assert model.training and greedy.shape == (2, 4)
    first = greedy[0, 0].item()
    assert model.generate(src[:1], max_length=4, do_sample=False, eos_token_id=first).shape == (1, 1)
    torch.manual_seed(0)
    sampled = model.generate(src, max_length=3, top_k=5, top_p=0.5, temperature=0.7, repetition_penalty=1.3)
    assert sampled.shape == (2, 3) and (sampled != tiny_config.pad_token_id).all()


def test_sampling_filters():
    logits = torch.tensor([[1.0, 3.0, 3.0, 0.5, 2.0]])
    assert torch.equal(top_k_filter(logits, 2).isinf(), torch.tensor([[True, False, False, True, True]]))
    assert torch.equal(top_k_filter(logits, 10), logits)
    kept = ~top_p_filter(torch.log(torch.tensor([[0.1, 0.5, 0.3, 0.1]])), 0.7).isinf()
    assert torch.equal(kept, torch.tensor([[False, True, True, False]]))
    penalised = apply_repetition_penalty(torch.tensor([[2.0, -2.0, 2.0]]), torch.tensor([[0, 1, 1]]), 2.0)
    assert torch.equal(penalised, torch.tensor([[1.0, -4.0, 2.0]]))


def test_positional_encoding_beyond_max_seq_len(tiny_config):
    model = APTModel(tiny_config).eval()  # max_seq_len 64
    tokens = torch.randint(3, 100, (1, 70))
    assert torch.isfinite(model(tokens[:, :8], tokens)).all()
    pe = model.positional_encoding
    assert torch.equal(pe(torch.zeros(1, 70, 32))[:, :64], pe.pe)
