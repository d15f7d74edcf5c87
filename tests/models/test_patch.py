"""apt_fast.patch / unpatch on APT models: what is swapped (whatever the class), Parameters and state_dict
keys kept, idempotence, the report, and patched = unpatched numbers on the upstream golden cases."""

from __future__ import annotations

import copy

import pytest
import torch
from golden import (
    CASES,
    EVAL_LOGITS,
    TRAIN_LOSS,
    assert_finite,
    assert_within,
    load_case,
    max_errors,
    reference_results,
    results,
    upstream_results,
)
from native_kernels import APT_ATTENTION_OPS, FLASH_ATTENTION_OPS, require_native
from torch import nn

import apt_fast
from apt_fast.modules import FusedAPTAttention

# The ops a patched APT model runs (the plain-attention path runs flash_attention), and with layers=True.
PATCHED_MODEL_OPS = (*APT_ATTENTION_OPS, *FLASH_ATTENTION_OPS)
LAYER_FUSION_OPS = ("add_layer_norm_fwd", "add_layer_norm_bwd", "bias_gelu_fwd", "bias_gelu_bwd")


def _patched_results(case, layers=False):
    _, model, inputs = load_case(case)
    report = apt_fast.patch(model, layers=layers)
    config = CASES[case]["config"]
    swapped_layers = config["num_encoder_layers"] + config["num_decoder_layers"] if layers else 0
    assert len(report.swapped) == config["num_encoder_layers"] + 2 * config["num_decoder_layers"] + swapped_layers
    return results(model, inputs)


def _check_patched(case, keys, layers=False):
    """The patched model's float32 values against our unpatched model in float64, within K x the larger of
    upstream's and this machine's float32 error of the unpatched model (+ 1e-5 of the value's max + the float32
    roundoff floor; golden.py says how K was chosen). The floor is what allows the single_token case's tau:
    exactly 0 in float64 and in both float32 references (softmax over one key has no gradient), ~0.2 u x the
    layer's largest gradient from the kernels' flash backward."""
    require_native(*PATCHED_MODEL_OPS, *(LAYER_FUSION_OPS if layers else ()))
    patched = _patched_results(case, layers)
    exact = reference_results(case, torch.float64)
    upstream, ours = upstream_results(case), reference_results(case, torch.float32)
    grads = sorted(k for k in upstream if k.startswith("grad."))
    assert sorted(k for k in patched if k.startswith("grad.")) == grads, "the same parameters get gradients"
    assert_finite(f"{case}: patched float32", {k: patched[k] for k in keys})
    up, own = max_errors(upstream, exact, keys), max_errors(ours, exact, keys)
    assert_within(f"{case}: patched float32 vs our float64", max_errors(patched, exact, keys),
                  {k: max(up[k], own[k]) for k in keys}, exact)


@pytest.mark.parametrize("case", list(CASES))
def test_golden_eval_logits(case):
    _check_patched(case, [EVAL_LOGITS])


@pytest.mark.parametrize("case", list(CASES))
def test_golden_train_gradients(case):
    grads = sorted(k for k in upstream_results(case) if k.startswith("grad."))
    _check_patched(case, [TRAIN_LOSS, *grads])


@pytest.mark.parametrize("case", list(CASES))
def test_golden_train_gradients_with_fused_layers(case):
    """patch(layers=True): the fused residual add + LayerNorm and bias + GELU by the same allowance."""
    grads = sorted(k for k in upstream_results(case) if k.startswith("grad."))
    _check_patched(case, [EVAL_LOGITS, TRAIN_LOSS, *grads], layers=True)


def test_parameters_and_state_dict_kept(tiny_model):
    params_before = {n: p for n, p in tiny_model.named_parameters()}
    keys_before = list(tiny_model.state_dict())
    apt_fast.patch(tiny_model)
    assert list(tiny_model.state_dict()) == keys_before
    assert all(p is params_before[n] for n, p in tiny_model.named_parameters())
    assert any(isinstance(m, FusedAPTAttention) for m in tiny_model.modules())


def test_idempotent_report_and_unpatch(tiny_model):
    originals = {n: m for n, m in tiny_model.named_modules()}
    first = apt_fast.patch(tiny_model)
    assert first.swapped and all(new == "FusedAPTAttention" for _, _, new in first.swapped)
    second = apt_fast.patch(tiny_model)
    assert not second.swapped
    assert {reason for _, reason in second.left_alone} == {"already FusedAPTAttention"}
    assert "swapped 0 module(s)" in str(second)
    assert apt_fast.unpatch(tiny_model) == len(first.swapped)
    assert all(m is originals[n] for n, m in tiny_model.named_modules())


def test_foreign_class_is_recognised_by_parameters(tiny_model):
    """A class from another package (here: a renamed copy) is swapped because its parameters match."""
    attention = tiny_model.encoder_layers[0].self_attn if hasattr(tiny_model, "encoder_layers") else next(
        m for m in tiny_model.modules() if hasattr(m, "sr_conv1"))
    foreign_class = type("AutopoieticAttention", (nn.Module,), {"forward": type(attention).forward,
                                                                 "_split_heads": type(attention)._split_heads})
    foreign = foreign_class()
    foreign.__dict__.update({k: v for k, v in attention.__dict__.items() if not k.startswith("_")})
    for store in ("_parameters", "_modules", "_buffers"):
        setattr(foreign, store, dict(getattr(attention, store)))
    holder = nn.Module()
    holder.attn = foreign
    report = apt_fast.patch(holder)
    assert [path for path, _, _ in report.swapped] == ["attn"] and isinstance(holder.attn, FusedAPTAttention)


def test_left_alone_with_reasons():
    holder = nn.Module()
    holder.partial = nn.Module()
    holder.partial.q_proj = nn.Linear(8, 8)  # an attention-like module without the APT parts
    report = apt_fast.patch(holder)
    assert not report.swapped
    [(path, reason)] = report.left_alone
    assert path == "partial" and reason.startswith("not an APT attention: lacks k_proj, v_proj, out_proj, sr_conv1")


def test_patched_equals_unpatched_with_masks_and_dropout_off(tiny_model):
    """Random tokens with key padding: the patched model's float32 logits against the unpatched model in
    float64, within golden.py's allowance of K x the unpatched model's own float32 error."""
    require_native(*PATCHED_MODEL_OPS)
    torch.manual_seed(0)
    src = torch.randint(3, tiny_model.config.vocab_size, (2, 9))
    tgt = torch.randint(3, tiny_model.config.vocab_size, (2, 7))
    pad = torch.zeros(2, 9, dtype=torch.bool)
    pad[1, -3:] = True
    reference, reference64 = copy.deepcopy(tiny_model), copy.deepcopy(tiny_model).double()
    apt_fast.patch(tiny_model)
    logits = {}
    with torch.no_grad():
        for name, model in (("patched", tiny_model), ("fp32", reference), ("fp64", reference64)):
            logits[name] = {EVAL_LOGITS: model.eval()(src_tokens=src, tgt_tokens=tgt, src_key_padding_mask=pad)}
    exact = logits["fp64"]
    assert_within("patched float32 vs unpatched float64", max_errors(logits["patched"], exact),
                  max_errors(logits["fp32"], exact), exact)


@pytest.fixture
def tiny_model():
    return load_case("tiny")[1]
