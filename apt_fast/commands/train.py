"""`apt-fast train`: train a new APT model from a JSON config (byte-level tokenizer)."""

from __future__ import annotations

import argparse

from ..train.config import TRAIN_DEFAULTS
from ._training import add_training_arguments, check_save_path, train_config_from_args, training_runtime
from .progress import show_progress


def add_parser(subparsers) -> None:
    parser = subparsers.add_parser(
        "train", help="train a new APT model from a JSON config",
        description="Build an APT model from --config (a JSON object of APTConfig fields; vocab_size and the "
                    "special ids default to the byte-level tokenizer's) and train it on --data-path.")
    parser.add_argument("--config", required=True, metavar="JSON", help="model config file")
    add_training_arguments(parser, TRAIN_DEFAULTS, save_path="apt_model")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from ..train.pretrain import train_model

    check_save_path(args)
    config = train_config_from_args(args)
    with training_runtime(args) as runtime:
        train_model(args.config, args.data_path, args.val_data_path, args.save_path, max_samples=args.max_samples,
                    resume=args.resume, overwrite=args.overwrite, runtime=runtime, config=config,
                    progress_bar=show_progress(args))
    return 0
