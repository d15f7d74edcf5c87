"""`apt-fast export-ollama`: the model as GGUF plus an Ollama Modelfile and a README."""

from __future__ import annotations

import argparse
import os

from ..gguf.tensor_types import TYPES


def add_parser(subparsers) -> None:
    parser = subparsers.add_parser(
        "export-ollama", help="write GGUF + Modelfile + README for Ollama (the 'apt' architecture runs only in apt_fast)",
        description="Write <name>-<quantize>.gguf, a Modelfile (FROM, TEMPLATE, stop tokens, sampling parameters) "
                    "and a README into --output-dir. llama.cpp and Ollama cannot execute the 'apt' architecture; "
                    "the README says how apt_fast runs the file.")
    parser.add_argument("--model-path", required=True, metavar="PATH", help="the model (any APT checkpoint)")
    parser.add_argument("--output-dir", required=True, metavar="DIR", help="an existing directory")
    parser.add_argument("--quantize", choices=list(TYPES), default="q8_0", help="weight type (default %(default)s)")
    parser.add_argument("--name", default="apt", help="model name, used in the file names (default %(default)s)")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from ..export.ollama import export_ollama, sampling_settings
    from ..train.inputs import load_pretrained

    if not os.path.isdir(args.output_dir):
        raise FileNotFoundError(f"--output-dir {args.output_dir} does not exist (create it first)")
    model, tokenizer = load_pretrained(args.model_path)
    paths = export_ollama(model, tokenizer, args.output_dir, args.quantize, name=args.name,
                          sampling=sampling_settings(args.model_path if os.path.isdir(args.model_path) else None))
    for path in paths.values():
        print(f"wrote {path}")
    return 0
