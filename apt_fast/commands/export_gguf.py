"""`apt-fast export-gguf`: write an APT model and its tokenizer as one GGUF file."""

from __future__ import annotations

import argparse
import os

from ..export.quantize import TYPES


def add_parser(subparsers) -> None:
    parser = subparsers.add_parser(
        "export-gguf", help="export an APT model to GGUF (f32, f16, bf16, q8_0, q4_0, q4_1, q5_0, q5_1)",
        description="Write the model, its config and its tokenizer as GGUF v3 (architecture 'apt'). Weight "
                    "matrices take --type; biases, norms and the small attention tensors stay F32.")
    parser.add_argument("--model-path", required=True, metavar="PATH", help="the model (any APT checkpoint)")
    parser.add_argument("--output", required=True, metavar="FILE", help="the .gguf file (its directory must exist)")
    parser.add_argument("--type", choices=list(TYPES), default="f16", help="weight type (default %(default)s)")
    parser.add_argument("--name", help="general.name (default: the output file's stem)")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from ..export.ollama import gguf_sampling, sampling_settings
    from ..export.writer import FILE_TYPES, check_output_path, export_gguf
    from ..models.apt.loading import load

    check_output_path(args.output)
    if not os.path.exists(args.model_path):
        raise FileNotFoundError(f"--model-path {args.model_path}: no such file or directory")
    model, tokenizer = load(args.model_path)
    path = export_gguf(model, args.output, args.type, tokenizer, name=args.name,
                       sampling=gguf_sampling(sampling_settings(args.model_path)))
    print(f"wrote {path} ({args.type}, general.file_type {FILE_TYPES[args.type]})")
    return 0
