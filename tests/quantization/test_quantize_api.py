"""apt_fast.quantize and the quantized modules: what is swapped and left alone (and why), the tied embedding,
idempotence, bad input, composition with apt_fast.patch, torch.compile, gradients, and the per-layer accuracy
figures (SQNR on Gaussian and heavy-tailed activations)."""

import copy

import pytest
import torch
from torch import nn

import apt_fast
from apt_fast.modules import Fp8Linear, FusedAPTAttention, Int8Linear, QuantizedEmbedding
from apt_fast.quantization.accuracy import layer_sqnr

CONFIGS = [apt_fast.Int8DynamicConfig(), apt_fast.Int8WeightOnlyConfig(group_size=32),
           apt_fast.Fp8WeightOnlyConfig(), apt_fast.Fp8WeightOnlyConfig("e5m2", "block")]


def batch(model):
    generator = torch.Generator().manual_seed(3)
    src = torch.randint(3, model.config.vocab_size, (2, 9), generator=generator)
    tgt = torch.randint(3, model.config.vocab_size, (2, 7), generator=generator)
    return src, tgt


@pytest.mark.parametrize("config", CONFIGS, ids=lambda c: f"{c.scheme}-{c}")
def test_swaps_every_linear_but_the_tied_projection(make_model, run, config):
    model = make_model()
    linears = [path for path, m in model.named_modules() if isinstance(m, nn.Linear)]
    reference = run(model, batch(model))
    report = apt_fast.quantize(model, config)
    swapped = [path for path, _, _ in report.swapped]
    assert sorted(swapped) == sorted(p for p in linears if p != "output_projection")
    assert report.left_alone == [("output_projection", "tied to the input embedding token_embedding; "
                                                        "include_embedding=True quantizes both")]
    assert isinstance(model.token_embedding, nn.Embedding)
    assert report.bytes_after < report.bytes_before / 3
    out = run(model, batch(model))
    assert (out - reference).abs().max() < 0.1 * reference.abs().max()
    assert model.config.quantization_config["scheme"] == config.scheme


def test_include_embedding_quantizes_the_tied_pair(make_model, run):
    model = make_model()
    reference = run(model, batch(model))
    report = apt_fast.quantize(model, apt_fast.Int8WeightOnlyConfig(), include_embedding=True)
    assert ("output_projection", "Linear", "Int8Linear") in report.swapped
    assert ("token_embedding", "Embedding", "QuantizedEmbedding") in report.swapped
    assert isinstance(model.token_embedding, QuantizedEmbedding)
    assert model.token_embedding.projection is model.output_projection
    ids = torch.tensor([[5, 6, 7]])
    expected = model.output_projection.dequantized()[ids]
    assert torch.equal(model.token_embedding(ids), expected)
    assert (run(model, batch(model)) - reference).abs().max() < 0.05 * reference.abs().max()


def test_quantizing_twice_changes_nothing_and_says_so(make_model):
    model = make_model()
    apt_fast.quantize(model, apt_fast.Int8DynamicConfig())
    before = copy.deepcopy(model.state_dict())
    second = apt_fast.quantize(model, apt_fast.Int8DynamicConfig())
    assert not second.swapped and str(second).startswith("apt_fast.quantize: swapped 0 module(s)")
    assert all(reason.startswith("already Int8Linear (int8_dynamic)") for path, reason in second.left_alone
               if path != "output_projection")
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())


def test_bad_input_names_what_is_wrong(make_model):
    model = make_model()
    with pytest.raises(ValueError, match="config must be one of Int8DynamicConfig, Int8WeightOnlyConfig, "
                                         "Fp8WeightOnlyConfig, got dict"):
        apt_fast.quantize(model, {"scheme": "int8"})
    with pytest.raises(ValueError, match=r"filter_fn selected token_embedding \(Embedding\), but only nn.Linear "
                                         "layers can be quantized"):
        apt_fast.quantize(model, apt_fast.Int8DynamicConfig(), filter_fn=lambda module, path: True)
    odd = nn.Sequential(nn.Linear(100, 64))
    with pytest.raises(ValueError, match=r"group_size must divide in_features of 0 \(100\), got 64"):
        apt_fast.quantize(odd, apt_fast.Int8WeightOnlyConfig(group_size=64))
    with pytest.raises(ValueError, match="group_size must be None .* or one of 32, 64, 128, got 48"):
        apt_fast.Int8DynamicConfig(group_size=48)
    with pytest.raises(ValueError, match="granularity must be one of 'tensor', 'row', 'block', got 'column'"):
        apt_fast.Fp8WeightOnlyConfig(granularity="column")
    apt_fast.quantize(model, apt_fast.Int8DynamicConfig())
    with pytest.raises(ValueError, match="already quantized with, int8_dynamic .* one model holds one scheme"):
        apt_fast.quantize(model, apt_fast.Fp8WeightOnlyConfig())


def test_filter_fn_selects_layers(make_model):
    model = make_model()
    report = apt_fast.quantize(model, apt_fast.Fp8WeightOnlyConfig(),
                               filter_fn=lambda m, path: isinstance(m, nn.Linear) and "linear" in path)
    assert {path.rsplit(".", 1)[1] for path, _, _ in report.swapped} == {"linear1", "linear2"}
    assert ("encoder_layers.0.self_attn.q_proj", "not selected by filter_fn") in report.left_alone


def test_composes_with_patch(make_model, run):
    model = make_model()
    apt_fast.quantize(model, apt_fast.Int8WeightOnlyConfig())
    unpatched = run(model, batch(model))
    report = apt_fast.patch(model)
    assert len(report.swapped) == 3 and isinstance(model.encoder_layers[0].self_attn, FusedAPTAttention)
    assert isinstance(model.encoder_layers[0].self_attn.q_proj, Int8Linear)
    torch.testing.assert_close(run(model, batch(model)), unpatched, rtol=1e-3, atol=1e-3)


@pytest.mark.parametrize("module", [Int8Linear.from_linear(nn.Linear(64, 48)),
                                    Fp8Linear.from_linear(nn.Linear(64, 48), fp8_format="e5m2")],
                         ids=["int8", "fp8"])
def test_torch_compile_fullgraph_and_gradients(module):
    x = torch.randn(3, 64, requires_grad=True)
    compiled = torch.compile(module, fullgraph=True, backend="aot_eager")
    torch.testing.assert_close(compiled(x), module(x))
    module(x).sum().backward()
    torch.testing.assert_close(x.grad, module.dequantized().sum(0).expand(3, 64), rtol=1e-5, atol=1e-5)
    assert module.bias.grad is not None and torch.equal(module.bias.grad, torch.full((48,), 3.0))


def test_state_dict_is_row_major_and_portable():
    linear = nn.Linear(100, 70)
    module = Int8Linear.from_linear(linear, group_size=None, activation_bits=16)
    state = module.state_dict()
    assert list(state) == ["bias", "qweight", "scales"]
    assert state["qweight"].dtype == torch.int8 and tuple(state["qweight"].shape) == (70, 100)
    assert tuple(state["scales"].shape) == (70, 1)
    fresh = Int8Linear(100, 70, activation_bits=16)
    fresh.load_state_dict(state)
    x = torch.randn(4, 100)
    assert torch.equal(fresh(x), module(x))
    assert "group_size=100" in repr(module) and "activation_bits=16" in repr(module)


# The per-layer accuracy figures: output SQNR against the fp32 layer (Linear 512 x 512, N(0, 0.02) weights)
# on Gaussian and heavy-tailed activations (Student-t 3 with 4 input channels x 50).
SQNR_FLOORS = [(apt_fast.Int8WeightOnlyConfig(), 38.0, 38.0), (apt_fast.Int8DynamicConfig(), 30.0, None),
               (apt_fast.Int8DynamicConfig(group_size=64), 30.0, 30.0), (apt_fast.Fp8WeightOnlyConfig(), 28.0, 28.0)]


@pytest.mark.parametrize("config, gaussian_db, heavy_db", SQNR_FLOORS, ids=lambda v: str(v))
def test_layer_sqnr(config, gaussian_db, heavy_db):
    torch.manual_seed(0)
    linear = nn.Linear(512, 512)
    nn.init.normal_(linear.weight, std=0.02)
    sqnr = layer_sqnr(linear, config.convert(linear))
    assert sqnr["gaussian"] >= gaussian_db, sqnr
    if heavy_db is not None:
        assert sqnr["heavy_tailed"] >= heavy_db, sqnr


@pytest.mark.parametrize("module", [Int8Linear.from_linear(nn.Linear(96, 40), activation_bits=16),
                                    Fp8Linear.from_linear(nn.Linear(96, 40))], ids=["int8", "fp8"])
def test_inference_calls_the_kernel_directly_with_the_same_numbers(module, monkeypatch):
    """Without autograd or tracing the modules skip the op dispatch (a tenth of a large GEMV); the numbers are the
    op's, and a call that needs gradients still goes through the op."""
    import apt_fast.autograd.quantized_linear as functions

    x = torch.randn(5, 96)
    through_op = module(x)  # the bias requires grad: the op and its autograd.Function
    with torch.no_grad():
        calls = []
        for name in ("Int8LinearFunction", "Fp8LinearFunction"):
            monkeypatch.setattr(getattr(functions, name), "apply", lambda *args: calls.append(args))
        direct = module(x)
    assert not calls and torch.equal(direct, through_op.detach())
