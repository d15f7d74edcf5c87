"""`apt-fast import-gguf`: rebuild an apt_fast model directory from a GGUF file."""

from __future__ import annotations

import argparse
import os


def add_parser(subparsers) -> None:
    parser = subparsers.add_parser(
        "import-gguf", help="rebuild an apt_fast model directory (safetensors + config + tokenizer) from GGUF",
        description="Read a GGUF file written by export-gguf, dequantize its weights to float32 and save the "
                    "model and tokenizer to --output-dir.")
    parser.add_argument("--input", required=True, metavar="FILE", help="the .gguf file")
    parser.add_argument("--output-dir", required=True, metavar="DIR", help="an existing directory")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from ..models.apt.gguf_loading import load_gguf
    from ..models.apt.loading import save

    if not os.path.isfile(args.input):
        raise FileNotFoundError(f"--input {args.input}: no such file")
    if not os.path.isdir(args.output_dir):
        raise FileNotFoundError(f"--output-dir {args.output_dir} does not exist (create it first)")
    model, tokenizer = load_gguf(args.input)
    save(model, args.output_dir, tokenizer)
    print(f"wrote {args.output_dir} ({sum(p.numel() for p in model.parameters()):,} parameters, "
          f"tokenizer: {type(tokenizer).__name__ if tokenizer is not None else 'none'})")
    return 0
