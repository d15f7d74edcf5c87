"""apt_fast.functional.add_layer_norm / bias_gelu: any leading dims, mixed dtypes, bad input named, torch.compile;
and the fused post-LN layers that apt_fast.patch swaps in: same Parameters, same numbers, unpatch."""

import copy

import pytest
import torch
import torch.nn.functional as F
from native_kernels import require_native
from torch import nn

import apt_fast
from apt_fast.functional import add_layer_norm, bias_gelu
from apt_fast.models.apt import APTConfig, APTModel
from apt_fast.modules import FusedPostLNDecoderLayer, FusedPostLNEncoderLayer

OPS = ("add_layer_norm_fwd", "add_layer_norm_bwd", "bias_gelu_fwd", "bias_gelu_bwd")


@pytest.fixture(autouse=True)
def _native():
    require_native(*OPS)


def test_leading_dims_and_gradients_match_torch():
    gen = torch.Generator().manual_seed(0)
    x, residual = (torch.randn(2, 3, 5, 24, generator=gen, requires_grad=True) for _ in range(2))
    norm = nn.LayerNorm(24)
    out = add_layer_norm(x, residual, norm.weight, norm.bias, norm.eps)
    expected = norm(x + residual)
    torch.testing.assert_close(out, expected, rtol=1e-5, atol=1e-5)
    grads = torch.autograd.grad(out.square().sum(), (x, residual, norm.weight))
    expected_grads = torch.autograd.grad(expected.square().sum(), (x, residual, norm.weight))
    for got, want in zip(grads, expected_grads):
        torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-5)
    bias = torch.randn(24, generator=gen, requires_grad=True)
    torch.testing.assert_close(bias_gelu(x, bias), F.gelu(x + bias), rtol=1e-5, atol=1e-6)


def test_mixed_dtypes_promote_like_the_add():
    x = torch.randn(4, 16).bfloat16()
    residual = torch.randn(4, 16)
    weight, bias = torch.ones(16), torch.zeros(16)
    out = add_layer_norm(x, residual, weight, bias)
    assert out.dtype == torch.float32
    torch.testing.assert_close(out, F.layer_norm(x + residual, (16,), weight, bias), rtol=1e-5, atol=1e-5)
    assert bias_gelu(x, torch.zeros(16)).dtype == torch.bfloat16  # a float32 bias with bfloat16 rows


@pytest.mark.parametrize("call, message", [
    (lambda: add_layer_norm(torch.randn(4, 8), torch.randn(4, 9), torch.ones(8), torch.zeros(8)),
     "residual must have x's shape (4, 8), got (4, 9)"),
    (lambda: add_layer_norm(torch.randn(4, 8).half(), torch.randn(4, 8).half(), torch.ones(8), torch.zeros(8)),
     "x must be float32 or bfloat16, got float16"),
    (lambda: add_layer_norm(torch.randn(4, 8), torch.randn(4, 8), torch.ones(7), torch.zeros(8)),
     "weight must have shape (8,) (x's width), got (7,)"),
    (lambda: add_layer_norm(torch.randn(4, 8), torch.randn(4, 8), torch.ones(8), torch.zeros(8), eps=-1.0),
     "eps must be in [0.0, inf], got -1.0"),
    (lambda: bias_gelu(torch.randn(4, 8), torch.zeros(8).bfloat16()), "bias must be float32, got bfloat16"),
    (lambda: bias_gelu(torch.randn(4, 8), torch.zeros(3)), "bias must have shape (8,) (x's width), got (3,)"),
    (lambda: bias_gelu(torch.tensor(1.0), torch.zeros(1)),
     "x must have at least 1 dimension (the normalised width), got a 0-D tensor"),
])
def test_bad_input_names_the_argument(call, message):
    with pytest.raises(ValueError) as error:
        call()
    assert str(error.value) == message


def test_compiles_without_graph_breaks():
    def block(x, residual, weight, bias, ffn_bias):
        return bias_gelu(add_layer_norm(x, residual, weight, bias), ffn_bias)

    args = (torch.randn(6, 16), torch.randn(6, 16), torch.ones(16), torch.zeros(16), torch.randn(16))
    compiled = torch.compile(block, fullgraph=True, backend="eager")
    torch.testing.assert_close(compiled(*args), block(*args))


def _model(**overrides):
    torch.manual_seed(0)
    config = dict(vocab_size=50, d_model=32, num_heads=4, num_encoder_layers=2, num_decoder_layers=1, d_ff=48,
                  dropout=0.0, use_dbc_dac=False)
    return APTModel(APTConfig(**{**config, **overrides}))


@pytest.mark.parametrize("activation", ["gelu", "relu"])
def test_patched_layers_keep_parameters_and_numbers(activation):
    """Layers only (attention left as it is), so the comparison isolates the fused layers: the training step's
    loss and every gradient within float32 roundoff of the unpatched model's."""
    model = _model(activation=activation)
    reference = copy.deepcopy(model)
    params = dict(model.named_parameters())
    report = apt_fast.patch(model, attention=False, layers=True)
    assert [new for _, _, new in report.swapped] == ["FusedPostLNEncoderLayer"] * 2 + ["FusedPostLNDecoderLayer"]
    assert all(p is params[n] for n, p in model.named_parameters())
    assert list(model.state_dict()) == list(reference.state_dict())
    src, tgt = torch.randint(3, 50, (3, 11)), torch.randint(3, 50, (3, 7))
    losses = []
    for net in (model, reference):
        logits = net.train()(src_tokens=src, tgt_tokens=tgt)
        loss = F.cross_entropy(logits.reshape(-1, 50), tgt.reshape(-1))
        loss.backward()
        losses.append(loss)
    torch.testing.assert_close(losses[0], losses[1], rtol=1e-6, atol=1e-6)
    for (name, p), q in zip(model.named_parameters(), reference.parameters()):
        if q.grad is not None:
            torch.testing.assert_close(p.grad, q.grad, rtol=1e-4, atol=1e-6, msg=name)


def test_layer_swap_is_opt_in_and_idempotent():
    model = _model()
    assert {new for _, _, new in apt_fast.patch(model).swapped} == {"FusedAPTAttention"}
    report = apt_fast.patch(model, layers=True)
    assert {new for _, _, new in report.swapped} == {"FusedPostLNEncoderLayer", "FusedPostLNDecoderLayer"}
    again = apt_fast.patch(model, layers=True)
    assert not again.swapped and {reason for _, reason in again.left_alone} == {
        "already FusedAPTAttention", "already FusedPostLNEncoderLayer", "already FusedPostLNDecoderLayer"}


def test_unpatch_restores_layers_and_attentions():
    model = _model()
    originals = dict(model.named_modules())
    report = apt_fast.patch(model, layers=True)
    assert isinstance(model.encoder_layers[0], FusedPostLNEncoderLayer)
    assert isinstance(model.decoder_layers[0], FusedPostLNDecoderLayer)
    assert apt_fast.unpatch(model) == len(report.swapped)
    assert all(m is originals[n] for n, m in model.named_modules())


def test_layers_left_alone_with_reasons():
    model = _model()
    model.encoder_layers[0].register_forward_hook(lambda *args: None)
    model.encoder_layers[1].norm1 = nn.RMSNorm(32)
    report = apt_fast.patch(model, attention=False, layers=True)
    reasons = dict(report.left_alone)
    assert reasons["encoder_layers.0"] == "it has forward hooks of its own (the swap would drop them)"
    assert reasons["encoder_layers.1"] == "its norms are not nn.LayerNorm over the last dim with weight and bias"
    assert [path for path, _, _ in report.swapped] == ["decoder_layers.0"]
