"""`apt-fast prune` end to end on a tiny saved model: every --prune-type, the printed per-layer sparsity table
against the zeros in the saved weights, sparsity.png, structured pruning's smaller model and --sparsify's
compressed one."""

from __future__ import annotations

import json
import os

import pytest
import torch
from pruning_cli_helpers import file_states, load_linear_weights, png_size, sparsity_table, zero_share

import apt_fast


def _prune(run_cli, model, out, *options):
    code, out_lines, err_lines = run_cli(["prune", "--model-path", model, "--output-dir", out, *options])
    assert code == 0, err_lines
    assert png_size(os.path.join(out, "sparsity.png"))[0] > 0
    table = sparsity_table(out_lines)
    assert table, out_lines
    return table, out_lines


def _check_table_against_weights(table, weights):
    """Every layer of the table has, in the saved weights, as many zeros as the table says it pruned."""
    assert set(table) == set(weights)
    for name, (kept, total, sparsity, _) in table.items():
        assert weights[name].numel() == total
        assert int((weights[name] != 0).sum()) == kept, name
        assert sparsity == pytest.approx(100 * (total - kept) / total, abs=0.005)


def _overall(weights) -> float:
    return sum(int((w == 0).sum()) for w in weights.values()) / sum(w.numel() for w in weights.values())


def test_magnitude_layer_prunes_each_layer_to_the_ratio(run_cli, model_dir, tmp_path):
    out = str(tmp_path / "out")
    table, lines = _prune(run_cli, model_dir(), out, "--prune-ratio", "0.5", "--prune-type", "magnitude")
    weights = load_linear_weights(out)
    _check_table_against_weights(table, weights)
    assert all(zero_share(w) == 0.5 for w in weights.values())
    assert all(pattern == "unstructured" for *_, pattern in table.values())
    assert any("output_projection" in line and "left dense" in line for line in lines)


def test_magnitude_global_prunes_the_ratio_over_all_layers(run_cli, model_dir, tmp_path):
    out = str(tmp_path / "out")
    table, _ = _prune(run_cli, model_dir(), out, "--prune-ratio", "0.3", "--prune-type", "magnitude",
                      "--scope", "global")
    weights = load_linear_weights(out)
    _check_table_against_weights(table, weights)
    assert _overall(weights) == pytest.approx(0.3, abs=1 / 20480)
    assert len({round(zero_share(w), 3) for w in weights.values()}) > 1  # one threshold, layers differ


def test_magnitude_embedding_ratio_prunes_the_tied_projection(run_cli, model_dir, tmp_path):
    out = str(tmp_path / "out")
    table, _ = _prune(run_cli, model_dir(), out, "--prune-ratio", "0.5", "--prune-type", "magnitude",
                      "--embedding-ratio", "0.25")
    model, _ = apt_fast.load(out)
    assert table["output_projection"][2] == pytest.approx(25.0, abs=0.01)
    assert zero_share(model.output_projection.weight) == pytest.approx(0.25, abs=1e-3)
    assert model.output_projection.weight.data_ptr() == model.token_embedding.weight.data_ptr()


@pytest.mark.parametrize("kind, scope", [("taylor", "global"), ("taylor", "layer"), ("wanda", None)])
def test_calibrated_methods_prune_the_ratio_and_report_the_loss(run_cli, model_dir, train_file, tmp_path, kind,
                                                                 scope):
    out = str(tmp_path / "out")
    options = ["--prune-ratio", "0.5", "--prune-type", kind, "--calibration-data", train_file]
    table, lines = _prune(run_cli, model_dir(), out, *options, *(["--scope", scope] if scope else []))
    weights = load_linear_weights(out)
    _check_table_against_weights(table, weights)
    assert _overall(weights) == pytest.approx(0.5, abs=1 / 20480)
    if scope != "global":
        assert all(zero_share(w) == pytest.approx(0.5, abs=1 / 1024) for w in weights.values())
    assert any(line.startswith("calibration data (32 samples): loss ") for line in lines)


def test_calibrated_pruning_differs_from_magnitude(run_cli, model_dir, train_file, tmp_path):
    """Taylor's scores come from the calibration gradients: its masks are not magnitude's."""
    model = model_dir()
    _prune(run_cli, model, str(tmp_path / "m"), "--prune-ratio", "0.5", "--prune-type", "magnitude")
    _prune(run_cli, model, str(tmp_path / "t"), "--prune-ratio", "0.5", "--prune-type", "taylor", "--scope", "layer",
           "--calibration-data", train_file)
    magnitude, taylor = load_linear_weights(tmp_path / "m"), load_linear_weights(tmp_path / "t")
    assert any(not torch.equal(magnitude[k] == 0, taylor[k] == 0) for k in magnitude)


@pytest.mark.parametrize("n, m", [(2, 4), (4, 8)])
def test_nm_keeps_n_of_every_m_inputs(run_cli, model_dir, tmp_path, n, m):
    out = str(tmp_path / "out")
    table, _ = _prune(run_cli, model_dir(), out, "--prune-ratio", "0.5", "--prune-type", "nm", "--nm", f"{n}:{m}")
    weights = load_linear_weights(out)
    _check_table_against_weights(table, weights)
    for name, weight in weights.items():
        groups = (weight != 0).reshape(weight.shape[0], -1, m)  # [N, K/m, m]
        assert bool((groups.sum(-1) == n).all()), name
        assert table[name][3] == f"{n}:{m}"


@pytest.mark.parametrize("block, width", [((16, 16), 32), ((1, 16), 32), ((32, 32), 64)])
def test_block_prunes_whole_tiles(run_cli, model_dir, tmp_path, block, width):
    out = str(tmp_path / "out")
    rows, cols = block
    table, _ = _prune(run_cli, model_dir(d_model=width, d_ff=2 * width), out, "--prune-ratio", "0.5",
                      "--prune-type", "block", "--block", f"{rows}x{cols}")
    weights = load_linear_weights(out)
    _check_table_against_weights(table, weights)
    for name, weight in weights.items():
        n, k = weight.shape
        tiles = (weight != 0).reshape(n // rows, rows, k // cols, cols).sum(dim=(1, 3))  # [N/r, K/c] kept per tile
        assert bool(((tiles == 0) | (tiles == rows * cols)).all()), name
        assert float((tiles == 0).float().mean()) == 0.5, name


def test_structured_ffn_saves_a_smaller_model(run_cli, model_dir, tmp_path):
    source, out = model_dir(), str(tmp_path / "out")
    table, lines = _prune(run_cli, source, out, "--prune-ratio", "0.5", "--prune-type", "structured")
    model, _ = apt_fast.load(out)
    assert model.config.d_ff == 32
    for layers in (model.encoder_layers, model.decoder_layers):
        assert tuple(layers[0].linear1.weight.shape) == (32, 32)
        assert tuple(layers[0].linear2.weight.shape) == (32, 32)
    weights = load_linear_weights(out)
    for name, (kept, *_) in table.items():
        assert weights[name].numel() == kept  # removed, not zeroed
    assert json.loads(open(os.path.join(out, "config.json")).read())["d_ff"] == 32
    assert os.path.getsize(os.path.join(out, "model.safetensors")) < os.path.getsize(
        os.path.join(source, "model.safetensors"))
    ids = torch.tensor([[5, 6, 7]])
    assert torch.isfinite(model(ids, ids)).all()


def test_structured_heads_saves_fewer_heads(run_cli, model_dir, tmp_path):
    source, out = model_dir(), str(tmp_path / "out")
    table, _ = _prune(run_cli, source, out, "--prune-ratio", "0.5", "--prune-type", "structured", "--target", "heads")
    model, _ = apt_fast.load(out)
    assert model.config.num_heads == 1
    attention = model.decoder_layers[0].multihead_attn
    assert tuple(attention.q_proj.weight.shape) == (16, 32)
    assert tuple(attention.out_proj.weight.shape) == (32, 16)
    assert all(pattern.startswith("heads 1/2") for *_, pattern in table.values())
    assert os.path.getsize(os.path.join(out, "model.safetensors")) < os.path.getsize(
        os.path.join(source, "model.safetensors"))
    ids = torch.tensor([[5, 6, 7]])
    assert torch.isfinite(model(ids, ids)).all()


def test_sparsify_saves_a_compressed_model_with_the_same_outputs(run_cli, model_dir, tmp_path):
    from apt_fast.modules.sparse_linear import SparseLinear

    source, dense_out, sparse_out = model_dir(), str(tmp_path / "dense"), str(tmp_path / "sparse")
    options = ["--prune-ratio", "0.7", "--prune-type", "magnitude"]
    _prune(run_cli, source, dense_out, *options)
    # min-speedup far below 1: every layer converts whatever the timing, so the outcome does not depend on the CPU
    _, lines = _prune(run_cli, source, sparse_out, *options, "--sparsify", "--min-speedup", "1e-9")
    assert any(line.startswith("apt_fast.sparsify: 16 layer(s) sparse, 0 left dense") for line in lines)
    dense, _ = apt_fast.load(dense_out)
    sparse, _ = apt_fast.load(sparse_out)
    assert sum(isinstance(m, SparseLinear) for m in sparse.modules()) == 16
    assert os.path.getsize(os.path.join(sparse_out, "model.safetensors")) < os.path.getsize(
        os.path.join(dense_out, "model.safetensors"))
    torch.manual_seed(1)
    source_ids, target_ids = torch.randint(3, 200, (2, 9)), torch.randint(3, 200, (2, 6))
    with torch.no_grad():
        expected, got = dense(source_ids, target_ids), sparse(source_ids, target_ids)
    # the sparse kernels sum the same products in another order: fp32 rounding, measured <= 1.2e-7 on logits of
    # magnitude ~0.3 at every SIMD tier (scalar, avx2, avx512); 100x that
    torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-5)


def test_sparsify_keeps_slow_layers_dense(run_cli, model_dir, tmp_path):
    """A speedup no kernel reaches: every layer stays dense, and the report says why."""
    out = str(tmp_path / "out")
    _, lines = _prune(run_cli, model_dir(), out, "--prune-ratio", "0.5", "--prune-type", "magnitude", "--sparsify",
                      "--min-speedup", "1e9")
    assert any(line.startswith("apt_fast.sparsify: 0 layer(s) sparse, 16 left dense") for line in lines)
    assert "sparsity_config" not in json.loads(open(os.path.join(out, "config.json")).read())


def test_overwrite_replaces_an_earlier_result(run_cli, model_dir, tmp_path):
    out = str(tmp_path / "out")
    source = model_dir()
    _prune(run_cli, source, out, "--prune-ratio", "0.3", "--prune-type", "magnitude")
    _prune(run_cli, source, out, "--prune-ratio", "0.7", "--prune-type", "magnitude", "--overwrite")
    assert _overall(load_linear_weights(out)) == pytest.approx(0.7, abs=1e-3)


def test_interrupt_while_saving_leaves_the_earlier_result(run_cli, model_dir, tmp_path, monkeypatch):
    """Ctrl-C after the new weights are staged, before they replace the earlier result (--overwrite): the
    earlier files stay as they were and no staging folder is left behind."""
    from apt_fast.models.apt.tokenization_byte import APTByteTokenizer

    source, out = model_dir(), str(tmp_path / "out")
    _prune(run_cli, source, out, "--prune-ratio", "0.3", "--prune-type", "magnitude")
    before = file_states(out)

    def interrupted(self, directory):
        raise KeyboardInterrupt

    monkeypatch.setattr(APTByteTokenizer, "save_pretrained", interrupted)
    code, _, err = run_cli(["prune", "--model-path", source, "--output-dir", out, "--prune-ratio", "0.7",
                            "--prune-type", "structured", "--overwrite"])
    assert code == 130 and err[-1] == "apt-fast prune: interrupted"
    assert file_states(out) == before
