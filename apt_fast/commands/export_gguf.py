"""`apt-fast export-gguf`: write an APT model and its tokenizer as one GGUF file."""

from __future__ import annotations

import argparse

from ..gguf.tensor_types import TYPES
from .progress import show_progress


def add_parser(subparsers) -> None:
    parser = subparsers.add_parser(
        "export-gguf", help="export an APT model to GGUF (f32, f16, bf16, q8_0, q4_0, q4_1, q5_0, q5_1)",
        description="Write the model, its config and its tokenizer as GGUF v3 (architecture 'apt'). Weight "
                    "matrices take --type; biases, norms and the small attention tensors stay F32.")
    parser.add_argument("--model-path", required=True, metavar="PATH", help="the model (any APT checkpoint)")
    parser.add_argument("--output", required=True, metavar="FILE",
                        help="the .gguf file (its directory is created when missing)")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing --output file")
    parser.add_argument("--type", choices=list(TYPES), default="f16", help="weight type (default %(default)s)")
    parser.add_argument("--name", help="general.name (default: the output file's stem)")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from ..export.checkpoint import export_checkpoint, export_summary

    path = export_checkpoint(args.model_path, args.output, args.type, name=args.name, progress=show_progress(args))
    print(export_summary(path, args.type))
    return 0
