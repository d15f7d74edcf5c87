"""`apt-fast prune`: prune a model's linear layers (apt_fast.prune), print the per-layer sparsity table and save the
pruned model with sparsity.png, its per-layer sparsity bars; with --sparsify, saved compressed (apt_fast.sparsify)."""

from __future__ import annotations

import argparse
import os

from ._pruning import (
    PLOT_FILE,
    add_pruning_arguments,
    prune_model,
    pruning_config,
    refuse_existing_output,
)
from ._training import int_at_least
from .import_gguf import MODEL_FILES
from .quantize import _size, _weights_file

BATCH_SIZE = 16  # calibration batches
MIN_SPEEDUP = 1.05  # apt_fast.sparsify's default


def positive_number(text: str) -> float:
    """An argparse ``type``: a finite number > 0, else 'argument --flag: must be a number > 0, got ...'."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a number > 0, got {text!r}") from None
    if not 0.0 < value < float("inf"):
        raise argparse.ArgumentTypeError(f"must be a number > 0, got {text}")
    return value


def add_parser(subparsers) -> None:
    parser = subparsers.add_parser(
        "prune", help="prune a model's linear layers and save it with sparsity.png (apt_fast.prune)",
        description="Prune the model's nn.Linear layers by --prune-type, print the per-layer sparsity table and "
                    "save the pruned model (an ordinary model with zeros where weights were pruned; structured "
                    "pruning saves a smaller one) and its tokenizer to --output-dir, with sparsity.png, a bar per "
                    "layer. The output projection tied to the input embedding is pruned only with "
                    "--embedding-ratio (magnitude).")
    parser.add_argument("--model-path", required=True, metavar="PATH", help="the model (any APT checkpoint or .gguf)")
    parser.add_argument("--output-dir", required=True, metavar="DIR",
                        help="where the model and sparsity.png go (created when missing)")
    add_pruning_arguments(parser, type_required=True, calibration_option=True)
    parser.add_argument("--max-length", type=int_at_least(2), default=128, metavar="N",
                        help="tokens per calibration source/target (default %(default)s)")
    parser.add_argument("--sparsify", action="store_true",
                        help="convert the pruned layers to SparseLinear where the sparse kernel is --min-speedup "
                             "times faster (apt_fast.sparsify), print its report and save the model compressed "
                             "(apt_fast.load restores it sparse)")
    parser.add_argument("--min-speedup", type=positive_number, metavar="X",
                        help=f"--sparsify: keep a layer dense unless sparse is X times faster at decode (default "
                             f"{MIN_SPEEDUP})")
    parser.add_argument("--overwrite", action="store_true", help="replace a model already in --output-dir")
    parser.set_defaults(run=run)


def _calibration_effect(before, after, samples: int) -> str:
    return (f"calibration data ({samples} samples): loss {before.loss:.4f} -> {after.loss:.4f}, token accuracy "
            f"{100 * before.token_accuracy:.2f}% -> {100 * after.token_accuracy:.2f}%")


def run(args: argparse.Namespace) -> int:
    from ..pruning import remove_masks
    from ..sparsity import sparsify
    from ..train.checkpointing import save_model
    from ..train.inputs import load_pretrained, load_tokenized
    from ..train.quality import measure_quality
    from ..train.sparsity_plot import render_sparsity_plot, write_plot

    config = pruning_config(args, calibrated=args.calibration_data is not None)
    if args.min_speedup is not None and not args.sparsify:
        raise ValueError(f"--min-speedup applies with --sparsify, got --min-speedup {args.min_speedup:g} alone")
    refuse_existing_output("--output-dir", args.output_dir, args.overwrite, (*MODEL_FILES, PLOT_FILE))
    model, tokenizer = load_pretrained(args.model_path)
    calibration, before = None, None
    if args.calibration_data is not None:
        calibration = load_tokenized(args.calibration_data, tokenizer, max_length=args.max_length,
                                     max_samples=args.calibration_samples, argument="--calibration-data")
        before = measure_quality(model, tokenizer, calibration, (), batch_size=BATCH_SIZE)
    report = prune_model(model, tokenizer, config, args, calibration, batch_size=BATCH_SIZE)
    print(report.table())
    if calibration is not None:
        after = measure_quality(model, tokenizer, calibration, (), batch_size=BATCH_SIZE)
        print(_calibration_effect(before, after, len(calibration)))
    png = render_sparsity_plot([(x.name, x.sparsity) for x in report.layers], report.sparsity,
                               f"apt-fast prune --prune-type {args.prune_type}: {args.model_path}")
    if args.sparsify:
        print(sparsify(model, min_speedup=args.min_speedup or MIN_SPEEDUP))
    remove_masks(model)
    save_model(model, args.output_dir, tokenizer)
    write_plot(os.path.join(args.output_dir, PLOT_FILE), png)
    source, written = _weights_file(args.model_path), os.path.join(args.output_dir, "model.safetensors")
    print(f"weights file: {_size(os.path.getsize(source), os.path.getsize(written))}: {source} -> {written}")
    print(f"wrote {args.output_dir} ({PLOT_FILE}: per-layer sparsity; tokenizer: {type(tokenizer).__name__})")
    return 0
