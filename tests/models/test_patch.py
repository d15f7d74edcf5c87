"""apt_fast.patch / unpatch on APT models: what is swapped (whatever the class), Parameters and state_dict
keys kept, idempotence, the report, and patched = unpatched numbers on the upstream golden cases."""

from __future__ import annotations

import copy

import pytest
import torch
from torch import nn

import apt_fast
from apt_fast import _native
from apt_fast.modules import FusedAPTAttention
from golden import CASES, load_case, train_grads

pytestmark = pytest.mark.skipif(not _native.is_available(), reason="apt_fast._C is not built")

@pytest.mark.parametrize("case", list(CASES))
def test_golden_eval_logits(case):
    data, model, inputs = load_case(case)
    config = CASES[case]["config"]
    report = apt_fast.patch(model)
    assert len(report.swapped) == config["num_encoder_layers"] + 2 * config["num_decoder_layers"]
    with torch.no_grad():
        logits = model.eval()(**inputs)
    ref = data["expected.eval_logits"]
    diff = (logits - ref).abs().max().item()
    print(f"{case}: patched eval logits max diff {diff:.2e} (max |ref| {ref.abs().max().item():.2e})")
    assert diff <= 1e-5 * ref.abs().max().item()


@pytest.mark.parametrize("case", list(CASES))
def test_golden_train_gradients(case):
    """Loss within 1e-5 of upstream's; every gradient's error against the same model run in float64 within
    1e-5 of its max plus 16x upstream's own float32 error. The factor covers k_proj.bias, sr_conv*.bias and
    tau: sums of cancelling terms (their exact value is ~0 or O(1/S)) whose float32 result depends on the
    order of summation; every other gradient is within 1e-5 of its max. An absolute floor of 1e-8 x the
    largest gradient of the model covers gradients that are exactly 0 in float64 (tau with a single key,
    where softmax over one key has zero gradient but a float32 flash backward leaves ~1e-10)."""
    data, model, inputs = load_case(case)
    apt_fast.patch(model)
    loss, grads = train_grads(model, inputs)
    _, grads64 = train_grads(load_case(case, torch.float64)[1], inputs)
    assert abs(loss.item() - data["expected.train_loss"].item()) <= 1e-5 * abs(data["expected.train_loss"].item())
    expected = {k[len("grad."):]: v for k, v in data.items() if k.startswith("grad.")}
    assert set(grads) == set(expected)
    worst = 0.0
    floor = 1e-8 * max(g.abs().max().item() for g in grads64.values())
    for name, ref in expected.items():
        got, exact = grads[name], grads64[name]
        assert torch.isfinite(got).all() == torch.isfinite(ref).all(), name
        err, scale = (got.double() - exact).abs().max().item(), exact.abs().max().item()
        upstream_error = (ref.double() - exact).abs().max().item()
        worst = max(worst, err / max(scale, 1e-30))
        assert err <= 1e-5 * scale + 16 * upstream_error + floor, f"{name}: err {err:.2e} (upstream {upstream_error:.2e})"
    print(f"{case}: worst gradient error relative to its max {worst:.2e}")


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
    torch.manual_seed(0)
    src = torch.randint(3, tiny_model.config.vocab_size, (2, 9))
    tgt = torch.randint(3, tiny_model.config.vocab_size, (2, 7))
    pad = torch.zeros(2, 9, dtype=torch.bool)
    pad[1, -3:] = True
    reference = copy.deepcopy(tiny_model)
    apt_fast.patch(tiny_model)
    for model in (tiny_model, reference):
        model.eval()
    with torch.no_grad():
        got = tiny_model(src_tokens=src, tgt_tokens=tgt, src_key_padding_mask=pad)
        want = reference(src_tokens=src, tgt_tokens=tgt, src_key_padding_mask=pad)
    torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-5)


@pytest.fixture
def tiny_model():
    return load_case("tiny")[1]
