"""`apt-fast evaluate`: loss, perplexity and token accuracy of a model on a data file."""

from __future__ import annotations

import argparse

from ..train.config import TrainConfig
from ._training import (
    add_bf16_argument,
    add_data_arguments,
    add_runtime_arguments,
    configure_logging,
    requested_device,
)


def add_parser(subparsers) -> None:
    parser = subparsers.add_parser(
        "evaluate", help="loss, perplexity and token accuracy of a model on a data file",
        description="Teacher-forced evaluation: mean token cross-entropy (loss), its exponential (perplexity) "
                    "and the share of target tokens the model predicts exactly (token accuracy); --exact-match "
                    "also decodes every sample greedily and compares the reply with the target.")
    parser.add_argument("--model-path", required=True, metavar="PATH", help="the model (any APT checkpoint)")
    add_data_arguments(parser, TrainConfig())
    parser.add_argument("--batch-size", type=int, default=8, help="default %(default)s")
    add_bf16_argument(parser)
    parser.add_argument("--exact-match", action="store_true", help="also report greedy-generation exact match")
    add_runtime_arguments(parser)
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    import torch

    from ..train.data import read_data_file
    from ..train.evaluation import evaluate, exact_match
    from ..train.fast_path import apply_fast_path
    from ..train.inputs import load_pretrained, load_tokenized

    if args.batch_size < 1:
        raise ValueError(f"--batch-size must be >= 1, got {args.batch_size}")
    configure_logging(quiet=args.quiet)
    model, tokenizer = load_pretrained(args.model_path)
    data = load_tokenized(args.data_path, tokenizer, max_length=args.max_length, max_samples=args.max_samples)
    model.to(torch.device(requested_device(args) or ("cuda" if torch.cuda.is_available() else "cpu")))
    apply_fast_path(model, not args.no_fast)
    result = evaluate(model, data, tokenizer, batch_size=args.batch_size, bf16=args.bf16)
    print(f"loss: {result.loss:.4f}")
    print(f"perplexity: {result.perplexity:.4f}")
    print(f"token accuracy: {100 * result.token_accuracy:.2f}%")
    print(f"samples: {result.samples}  target tokens: {result.tokens}")
    if args.exact_match:
        examples = read_data_file(args.data_path, max_samples=args.max_samples).examples
        print(f"exact match: {100 * exact_match(model, tokenizer, examples):.2f}%")
    return 0
