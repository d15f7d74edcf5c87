"""`apt-fast import-gguf`: rebuild an apt_fast model directory from a GGUF file."""

from __future__ import annotations

import argparse
import os

MODEL_FILES = ("config.json", "model.safetensors")  # what import-gguf writes besides the tokenizer files


def add_parser(subparsers) -> None:
    parser = subparsers.add_parser(
        "import-gguf", help="rebuild an apt_fast model directory (safetensors + config + tokenizer) from GGUF",
        description="Read a GGUF file written by export-gguf and save the model and tokenizer to --output-dir: "
                    "Q8_0 tensors as weight-only int8 layers (a quantized directory), other types dequantized to "
                    "float32.")
    parser.add_argument("--input", required=True, metavar="FILE", help="the .gguf file")
    parser.add_argument("--output-dir", required=True, metavar="DIR", help="the directory (created when missing)")
    parser.add_argument("--overwrite", action="store_true", help="replace a model already in --output-dir")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from ..models.apt.gguf_loading import load_gguf
    from ..train.checkpointing import save_model

    if not args.overwrite and any(os.path.exists(os.path.join(args.output_dir, f)) for f in MODEL_FILES):
        raise FileExistsError(f"--output-dir {args.output_dir} already holds a model; pass --overwrite to replace it")
    model, tokenizer = load_gguf(args.input)
    save_model(model, args.output_dir, tokenizer)  # atomic files, without transformers' progress bar
    print(f"wrote {args.output_dir} ({sum(p.numel() for p in model.parameters()):,} parameters, "
          f"tokenizer: {type(tokenizer).__name__ if tokenizer is not None else 'none'})")
    return 0
