"""The pruning commands against bad input: exit code 2, the exact one-line error on stderr, nothing on stdout, and
every existing file untouched (bytes and modification times), the model read and an earlier result in the output
directory that --overwrite would have replaced."""

from __future__ import annotations

import shutil

import pytest
import torch
from pruning_cli_helpers import file_states
from safetensors.torch import load_file, save_file

RATIO_ERROR = "argument {flag}: must be a number in [0, 1), got {value} (see --help)"
STRUCTURED = "--prune-type structured --prune-ratio"

# name -> (command and options after --model-path M --output-dir / --save-path O, the model's d_model (or a
# checkpoint edit), the error after "apt-fast CMD: error: ")
PRUNE_CASES = {
    "ratio 1": ("--prune-type magnitude --prune-ratio 1", 32,
                RATIO_ERROR.format(flag="--prune-ratio", value="1")),
    "ratio below 0": ("--prune-type magnitude --prune-ratio -0.1", 32,
                      RATIO_ERROR.format(flag="--prune-ratio", value="-0.1")),
    "ratio not a number": ("--prune-type magnitude --prune-ratio half", 32,
                           "argument --prune-ratio: must be a number in [0, 1), got 'half' (see --help)"),
    "2:4, K not divisible by 4": (
        "--prune-type nm --nm 2:4 --prune-ratio 0.5", 34,
        "--nm 2:4: m=4 must divide in_features of encoder_layers.0.self_attn.q_proj for 2:4 pruning, got "
        "in_features 34 (weight shape (34, 34)); leave the layer out with filter_fn"),
    "4:8, K not divisible by 8": (
        "--prune-type nm --nm 4:8 --prune-ratio 0.5", 36,
        "--nm 4:8: m=8 must divide in_features of encoder_layers.0.self_attn.q_proj for 4:8 pruning, got "
        "in_features 36 (weight shape (36, 36)); leave the layer out with filter_fn"),
    "nm with another ratio": ("--prune-type nm --prune-ratio 0.3", 32,
                              "--prune-ratio must be 0.5 for --prune-type nm --nm 2:4 (2 of every 4 weights kept), "
                              "got 0.3"),
    "block that does not tile": (
        "--prune-type block --block 16x16 --prune-ratio 0.5", 36,
        "--block 16x16: block (16, 16) must tile the weight of encoder_layers.0.self_attn.q_proj: weight shape "
        "(36, 36) is not a multiple of (16, 16); choose another block or leave the layer out with filter_fn"),
    "taylor without calibration data": (
        "--prune-type taylor --prune-ratio 0.5", 32,
        "--prune-type taylor needs --calibration-data FILE (its scores are measured on data), got none"),
    "wanda without calibration data": (
        "--prune-type wanda --prune-ratio 0.5", 32,
        "--prune-type wanda needs --calibration-data FILE (its scores are measured on data), got none"),
    "structured emptying the heads": (
        f"{STRUCTURED} 0.8 --target heads", 32,
        "--prune-ratio 0.8 --target heads: ratio must be < 0.75 to leave at least one of the 2 attention heads of "
        "encoder_layers.0.self_attn, got 0.8"),
    "structured emptying the FFN": (
        f"{STRUCTURED} 0.995", 32,
        "--prune-ratio 0.995 --target ffn: ratio must be < 0.992188 to leave at least one of the 64 FFN neurons of "
        "encoder_layers.0, got 0.995"),
    "a setting of another method": ("--prune-type magnitude --prune-ratio 0.5 --nm 2:4", 32,
                                    "--nm applies to --prune-type nm, got --prune-type magnitude"),
    "min-speedup without sparsify": ("--prune-type magnitude --prune-ratio 0.5 --min-speedup 2", 32,
                                     "--min-speedup applies with --sparsify, got --min-speedup 2 alone"),
    "min-speedup 0": ("--prune-type magnitude --prune-ratio 0.5 --sparsify --min-speedup 0", 32,
                      "argument --min-speedup: must be a number > 0, got 0 (see --help)"),
    "mask of another shape": ("--prune-type magnitude --prune-ratio 0.5", "mask shape",
                              "{model}/model.safetensors: pruning mask encoder_layers.0.linear1.weight_mask must "
                              "have the shape of its weight, (64, 32), got (64, 31)"),
    "mask with values other than 0 and 1": (
        "--prune-type magnitude --prune-ratio 0.5", "mask values",
        "{model}/model.safetensors: pruning mask encoder_layers.0.linear1.weight_mask must hold only 0 and 1, got "
        "values such as 2.0"),
}
TRAINING = "--finetune-epochs 1 --batch-size 8 --no-tensorboard"
TRAINING_CASES = {
    "prune-finetune ratio 1": ("prune-finetune", f"--prune-ratio 1 {TRAINING}", 32,
                               RATIO_ERROR.format(flag="--prune-ratio", value="1")),
    "prune-finetune 2:4, K not divisible by 4": (
        "prune-finetune", f"--prune-type nm --prune-ratio 0.5 {TRAINING}", 34,
        "--nm 2:4: m=4 must divide in_features of encoder_layers.0.self_attn.q_proj for 2:4 pruning, got "
        "in_features 34 (weight shape (34, 34)); leave the layer out with filter_fn"),
    "prune-finetune structured emptying the heads": (
        "prune-finetune", f"{STRUCTURED} 0.8 --target heads {TRAINING}", 32,
        "--prune-ratio 0.8 --target heads: ratio must be < 0.75 to leave at least one of the 2 attention heads of "
        "encoder_layers.0.self_attn, got 0.8"),
    "prune-finetune mask of another shape": (
        "prune-finetune", f"--prune-ratio 0.5 {TRAINING}", "mask shape",
        "{model}/model.safetensors: pruning mask encoder_layers.0.linear1.weight_mask must have the shape of its "
        "weight, (64, 32), got (64, 31)"),
    "lottery-ticket ratio 1": ("lottery-ticket", "--iterations 1 --prune-ratio-per-iter 1 --epochs-per-iter 1", 32,
                               RATIO_ERROR.format(flag="--prune-ratio-per-iter", value="1")),
    "lottery-ticket 0 iterations": ("lottery-ticket", "--iterations 0 --prune-ratio-per-iter 0.5", 32,
                                    "argument --iterations: must be an int >= 1, got 0 (see --help)"),
    "lottery-ticket mask of another shape": (
        "lottery-ticket", "--iterations 1 --prune-ratio-per-iter 0.5 --epochs-per-iter 1 --no-tensorboard",
        "mask shape",
        "{model}/model.safetensors: pruning mask encoder_layers.0.linear1.weight_mask must have the shape of its "
        "weight, (64, 32), got (64, 31)"),
}


def _with_mask(path: str, mask: torch.Tensor) -> None:
    """Add ``encoder_layers.0.linear1.weight_mask`` to the checkpoint at ``path``."""
    weights = load_file(f"{path}/model.safetensors")
    weights["encoder_layers.0.linear1.weight_mask"] = mask
    save_file(weights, f"{path}/model.safetensors", metadata={"format": "pt"})


def _model(model_dir, tmp_path, model) -> str:
    if isinstance(model, int):
        return model_dir(d_model=model)
    path = str(tmp_path / model.replace(" ", "-"))
    shutil.copytree(model_dir(), path)
    if model == "mask shape":
        _with_mask(path, torch.ones(64, 31, dtype=torch.bool))
    else:
        _with_mask(path, torch.full((64, 32), 2.0))
    return path


@pytest.fixture
def earlier_result(run_cli, model_dir, tmp_path):
    """An output directory holding an earlier `apt-fast prune` result (model, tokenizer, sparsity.png)."""
    out = str(tmp_path / "earlier")
    code, _, err = run_cli(["prune", "--model-path", model_dir(), "--output-dir", out, "--prune-type", "magnitude",
                            "--prune-ratio", "0.2"])
    assert code == 0, err
    return out


def _fails_leaving_files_untouched(run_cli, argv, expected, *roots):
    before = file_states(*roots)
    code, out, err = run_cli(argv)
    assert code == 2
    assert out == []
    assert err[-1] == expected
    assert sum("error" in line for line in err) == 1, err  # lines before it are info logs (the data read)
    assert file_states(*roots) == before


@pytest.mark.parametrize("case", PRUNE_CASES)
def test_prune_bad_input(run_cli, model_dir, tmp_path, earlier_result, case):
    options, model, message = PRUNE_CASES[case]
    path = _model(model_dir, tmp_path, model)
    argv = ["prune", "--model-path", path, "--output-dir", earlier_result, *options.split(), "--overwrite"]
    _fails_leaving_files_untouched(run_cli, argv, "apt-fast prune: error: " + message.format(model=path), path,
                                   earlier_result)


@pytest.mark.parametrize("case", TRAINING_CASES)
def test_training_commands_bad_input(run_cli, model_dir, tmp_path, train_file, earlier_result, case):
    command, options, model, message = TRAINING_CASES[case]
    path = _model(model_dir, tmp_path, model)
    argv = [command, "--model-path", path, "--data-path", train_file, "--save-path", earlier_result,
            *options.split(), "--overwrite"]
    _fails_leaving_files_untouched(run_cli, argv, f"apt-fast {command}: error: " + message.format(model=path), path,
                                   earlier_result, train_file)


@pytest.mark.parametrize("command, options, message", [
    ("prune", "--output-dir {out} --prune-type magnitude --prune-ratio 0.5",
     "--output-dir {out} already holds a model; pass --overwrite to replace it"),
    ("prune-finetune", "--save-path {out} --prune-ratio 0.5 --data-path {data}",
     "--save-path {out} already holds a model; pass --overwrite to replace it, or --resume to continue its training"),
    ("lottery-ticket", "--save-path {out} --iterations 1 --prune-ratio-per-iter 0.5 --data-path {data}",
     "--save-path {out} already holds a model; pass --overwrite to replace it"),
])
def test_an_existing_output_needs_overwrite(run_cli, model_dir, train_file, earlier_result, command, options,
                                            message):
    model = model_dir()
    argv = [command, "--model-path", model, *options.format(out=earlier_result, data=train_file).split()]
    _fails_leaving_files_untouched(run_cli, argv, f"apt-fast {command}: error: {message.format(out=earlier_result)}",
                                   model, earlier_result)
