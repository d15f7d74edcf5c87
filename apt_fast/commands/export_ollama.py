"""`apt-fast export-ollama`: the model as GGUF plus an Ollama Modelfile and a README."""

from __future__ import annotations

import argparse
import os

from ..gguf.tensor_types import TYPES
from .progress import show_progress


def add_parser(subparsers) -> None:
    parser = subparsers.add_parser(
        "export-ollama",
        help="write GGUF + Modelfile + README for Ollama (the 'apt' architecture runs only in apt_fast)",
        description="Write <name>-<quantize>.gguf, a Modelfile (FROM, TEMPLATE, stop tokens, sampling parameters) "
                    "and a README into --output-dir. llama.cpp and Ollama cannot execute the 'apt' architecture; "
                    "the README says how apt_fast runs the file.")
    parser.add_argument("--model-path", required=True, metavar="PATH", help="the model (any APT checkpoint)")
    parser.add_argument("--output-dir", required=True, metavar="DIR", help="the directory (created when missing)")
    parser.add_argument("--overwrite", action="store_true", help="replace files of an earlier export in --output-dir")
    parser.add_argument("--quantize", choices=list(TYPES), default="q8_0", help="weight type (default %(default)s)")
    parser.add_argument("--name", default="apt", help="model name, used in the file names (default %(default)s)")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from ..export.ollama import bundle_paths, export_ollama, sampling_settings
    from ..train.inputs import load_pretrained

    existing = [os.path.basename(p) for p in bundle_paths(args.output_dir, args.quantize, args.name).values()
                if os.path.exists(p)]
    if existing and not args.overwrite:
        raise FileExistsError(f"--output-dir {args.output_dir} already holds {', '.join(existing)}; pass --overwrite "
                              f"to replace them")
    model, tokenizer = load_pretrained(args.model_path)
    paths = export_ollama(model, tokenizer, args.output_dir, args.quantize, name=args.name,
                          sampling=sampling_settings(args.model_path if os.path.isdir(args.model_path) else None),
                          progress=show_progress(args))
    for path in paths.values():
        print(f"wrote {path}")
    return 0
