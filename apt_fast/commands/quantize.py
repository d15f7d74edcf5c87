"""`apt-fast quantize`: quantize a model's linear layers to 8 bits (apt_fast.quantize) and save it with its
tokenizer, printing what changed, each layer's accuracy (SQNR) and the sizes before and after."""

from __future__ import annotations

import argparse
import itertools
import os

from ..quantization.configs import FP8_GRANULARITIES, GROUP_SIZES
from .checks import MODEL_FILES as INPUT_MODEL_FILES
from .import_gguf import MODEL_FILES

SCHEMES = ("int8-dynamic", "int8-weight-only", "fp8-e4m3", "fp8-e5m2")


def add_parser(subparsers) -> None:
    parser = subparsers.add_parser(
        "quantize", help="quantize a model's linear layers to int8 or FP8 and save it (apt_fast.quantize)",
        description="Swap the model's nn.Linear layers for Int8Linear / Fp8Linear, print what changed, each layer's "
                    "output SQNR and the sizes before and after, and save the model and its tokenizer to "
                    "--output-dir (config.json records the scheme: apt_fast.load, generate, chat and evaluate "
                    "load it quantized). A model that is already quantized is left as it is.")
    parser.add_argument("--model-path", required=True, metavar="PATH", help="the model (any APT checkpoint or .gguf)")
    parser.add_argument("--scheme", choices=SCHEMES, default="int8-weight-only",
                        help="int8-dynamic: int8 weights and activations (W8A8); int8-weight-only: int8 weights "
                             "(the default); fp8-e4m3 / fp8-e5m2: FP8 weights")
    parser.add_argument("--output-dir", required=True, metavar="DIR",
                        help="where the model goes (created when missing)")
    parser.add_argument("--group-size", type=int, choices=GROUP_SIZES, metavar="G",
                        help="int8 schemes: one scale per G inputs, G in 32, 64, 128 (default: one per output channel)")
    parser.add_argument("--granularity", choices=FP8_GRANULARITIES,
                        help="fp8 schemes: one scale per tensor, per output channel (row, the default) or per 128 "
                             "inputs (block)")
    parser.add_argument("--include-embedding", action="store_true",
                        help="also quantize the output projection tied to the input embedding (both share it)")
    parser.add_argument("--overwrite", action="store_true", help="replace a model already in --output-dir")
    parser.set_defaults(run=run)


def quantization_config(args: argparse.Namespace):
    """The config --scheme and its settings describe; ValueError naming a setting the scheme does not take."""
    from ..quantization import Fp8WeightOnlyConfig, Int8DynamicConfig, Int8WeightOnlyConfig

    if args.scheme.startswith("int8-"):
        if args.granularity is not None:
            raise ValueError(f"--granularity applies to the fp8 schemes; --scheme {args.scheme} takes --group-size")
        config_class = Int8DynamicConfig if args.scheme == "int8-dynamic" else Int8WeightOnlyConfig
        return config_class(group_size=args.group_size)
    if args.group_size is not None:
        raise ValueError(f"--group-size applies to the int8 schemes; --scheme {args.scheme} takes --granularity "
                         f"({', '.join(FP8_GRANULARITIES)})")
    return Fp8WeightOnlyConfig(format=args.scheme.removeprefix("fp8-"), granularity=args.granularity or "row")


def _setting(args: argparse.Namespace) -> str | None:
    """The flag that set inputs per scale, as given (what a layer's in_features may not fit)."""
    if args.group_size is not None:
        return f"--group-size {args.group_size}"
    return "--granularity block" if args.granularity == "block" else None


def _memory(model) -> int:
    """Bytes of the model's parameters and buffers (quantized layers: their codes and scales as they sit in memory)."""
    return sum(t.numel() * t.element_size() for t in itertools.chain(model.parameters(), model.buffers()))


def _weights_file(path: str) -> str:
    if os.path.isdir(path):
        return next(os.path.join(path, name) for name in INPUT_MODEL_FILES if os.path.isfile(os.path.join(path, name)))
    return path


def _size(before: int, after: int) -> str:
    return f"{before / 2**20:.2f} MiB -> {after / 2**20:.2f} MiB ({after / before:.3f}x)"


def run(args: argparse.Namespace) -> int:
    from ..quantization import quantize
    from ..train.checkpointing import save_model
    from ..train.inputs import load_pretrained

    config = quantization_config(args)
    if not args.overwrite and any(os.path.exists(os.path.join(args.output_dir, f)) for f in MODEL_FILES):
        raise FileExistsError(f"--output-dir {args.output_dir} already holds a model; pass --overwrite to replace it")
    model, tokenizer = load_pretrained(args.model_path)
    existing = getattr(model.config, "quantization_config", None)
    if existing:
        print(f"--model-path {args.model_path} is already quantized ({existing['scheme']}, "
              f"{len(existing['modules'])} layers); nothing written")
        return 0
    before = _memory(model)
    try:
        report = quantize(model, config, include_embedding=args.include_embedding, report_accuracy=True)
    except ValueError as err:  # inputs per scale that do not divide a layer's inputs
        setting = _setting(args)
        if setting is None:
            raise
        raise ValueError(f"{setting}: {err}") from None
    print(report)
    save_model(model, args.output_dir, tokenizer)
    source, written = _weights_file(args.model_path), os.path.join(args.output_dir, "model.safetensors")
    print(f"model in memory: {_size(before, _memory(model))}")
    print(f"weights file: {_size(os.path.getsize(source), os.path.getsize(written))}: {source} -> {written}")
    print(f"wrote {args.output_dir} ({config.scheme}, tokenizer: {type(tokenizer).__name__})")
    return 0
