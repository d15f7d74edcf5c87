"""Options shared by the training commands (fine-tune, train, distill) and their translation into a
TrainConfig; the --save-path check, logging set-up and the torchrun runtime around a command."""

from __future__ import annotations

import argparse
import logging
import sys
from contextlib import contextmanager
from typing import Callable

from ..train.config import SCHEDULES, TrainConfig


def int_at_least(minimum: int) -> Callable[[str], int]:
    """An argparse ``type``: an int >= ``minimum``, else the one-line error 'argument --flag: must be ...'."""
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"must be an int >= {minimum}, got {text!r}") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"must be an int >= {minimum}, got {value}")
        return value

    return parse


def add_data_arguments(parser: argparse.ArgumentParser, defaults: TrainConfig) -> None:
    parser.add_argument("--data-path", required=True, metavar="FILE",
                        help="training data: .txt (one sample per line), .jsonl/.json (ShareGPT, Alpaca, chat, "
                             "prompt/response or text records) or .csv (a text column)")
    parser.add_argument("--max-samples", type=int_at_least(1), metavar="N",
                        help="use only the first N training samples")
    parser.add_argument("--max-length", type=int_at_least(2), default=defaults.max_length, metavar="N",
                        help="tokens per source/target; longer samples are truncated and counted (default %(default)s)")


def add_training_arguments(parser: argparse.ArgumentParser, defaults: TrainConfig, save_path: str, *,
                           epochs_flag: str = "--epochs", epochs_help: str = "", resumable: bool = True) -> None:
    """The guide's options (with ``defaults``) plus the engine's: seed, resume, schedule, bf16, ...
    ``epochs_flag``: the name of the epochs option (its dest stays ``epochs``), ``epochs_help`` what it counts;
    ``resumable=False`` leaves out --resume (a command that runs several trainings)."""
    add_data_arguments(parser, defaults)
    parser.add_argument("--val-data-path", metavar="FILE", help="validation data (same formats): evaluation "
                        "every --eval-steps, early stopping and the best model")
    parser.add_argument("--save-path", default=save_path, metavar="DIR", help="output directory (default %(default)s)")
    parser.add_argument("--overwrite", action="store_true", help="replace a model already in --save-path")
    if resumable:
        parser.add_argument("--resume", nargs="?", const="latest", metavar="CHECKPOINT",
                            help="continue from the newest checkpoint in --save-path, or from CHECKPOINT")
    parser.add_argument(epochs_flag, dest="epochs", type=int_at_least(1), default=defaults.epochs,
                        help=f"{epochs_help}default %(default)s")
    parser.add_argument("--batch-size", type=int_at_least(1), default=defaults.batch_size,
                        help="global batch, split over torchrun processes (default %(default)s)")
    parser.add_argument("--gradient-accumulation-steps", type=int_at_least(1),
                        default=defaults.gradient_accumulation_steps, metavar="N",
                        help="run N batches of --batch-size forward and backward per optimizer step, which follows "
                             "the mean of their losses: one N times larger batch when the batches hold equal "
                             "numbers of target tokens (each loss is a per-token mean). --max-steps, "
                             "--warmup-steps, --eval-steps, --save-steps, early stopping, checkpoints and --resume "
                             "count optimizer steps (default %(default)s)")
    parser.add_argument("--learning-rate", type=float, default=defaults.learning_rate, help="default %(default)s")
    parser.add_argument("--weight-decay", type=float, default=defaults.weight_decay, help="default %(default)s")
    parser.add_argument("--warmup-steps", type=int_at_least(0),
                        help="linear warm-up steps (default: 10%% of the steps)")
    parser.add_argument("--schedule", choices=SCHEDULES, default=defaults.schedule, help="default %(default)s")
    parser.add_argument("--max-steps", type=int_at_least(1), metavar="N", help="stop after N optimizer steps")
    parser.add_argument("--grad-clip", type=float, default=defaults.grad_clip,
                        help="gradient-norm clipping, 0 disables (default %(default)s)")
    parser.add_argument("--skip-nonfinite-steps", type=int_at_least(0), default=defaults.skip_nonfinite_steps,
                        metavar="N", help="skip the update of up to N steps whose loss or gradient norm is NaN "
                                          "or infinite; the next one stops the run (default %(default)s)")
    parser.add_argument("--label-smoothing", type=float, default=defaults.label_smoothing, help="default %(default)s")
    add_bf16_argument(parser)
    parser.add_argument("--early-stopping-patience", type=int_at_least(0), default=defaults.early_stopping_patience,
                        help="evaluations without improvement before stopping, 0 disables (default %(default)s)")
    parser.add_argument("--eval-steps", type=int_at_least(1), default=defaults.eval_steps, help="default %(default)s")
    parser.add_argument("--save-steps", type=int_at_least(1), default=defaults.save_steps, help="default %(default)s")
    parser.add_argument("--keep-checkpoints", type=int_at_least(1), default=defaults.keep_checkpoints,
                        help="default %(default)s")
    parser.add_argument("--seed", type=int_at_least(0), default=defaults.seed, help="default %(default)s")
    add_runtime_arguments(parser)
    parser.add_argument("--no-tensorboard", action="store_true", help="write no TensorBoard event logs")


def add_bf16_argument(parser: argparse.ArgumentParser) -> None:
    """--bf16 of every command that trains or evaluates (TrainConfig.bf16, apt_fast.train.precision)."""
    parser.add_argument("--bf16", action="store_true",
                        help="run the forward pass and the loss under bfloat16 autocast: bf16 matmuls and attention "
                             "(AMX tiles or AVX-512 BF16 where the CPU has them, `apt-fast info` says which); the "
                             "weights stay float32, and so do gradients and optimizer state in training")


def add_runtime_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--no-fast", action="store_true", help="run without apt_fast's kernels (plain PyTorch)")
    parser.add_argument("--device", help="cpu, cuda, cuda:N or auto (default auto: cuda when available)")


def requested_device(args: argparse.Namespace) -> str | None:
    """--device as torch reads it; None for auto (checked by commands/checks.py before the command runs)."""
    return None if args.device in (None, "auto") else args.device


def check_save_path(args: argparse.Namespace) -> None:
    """Before anything is loaded: a --save-path holding a model needs --overwrite or --resume (the engine's
    own check, which changes nothing when it passes, and its message)."""
    from ..train.checkpointing import CheckpointStore

    if not args.overwrite:
        CheckpointStore(args.save_path).prepare(overwrite=False, resuming=getattr(args, "resume", None) is not None)


def train_config_from_args(args: argparse.Namespace) -> TrainConfig:
    return TrainConfig(
        epochs=args.epochs, batch_size=args.batch_size, learning_rate=args.learning_rate,
        gradient_accumulation_steps=args.gradient_accumulation_steps,
        weight_decay=args.weight_decay, warmup_steps=args.warmup_steps, schedule=args.schedule,
        max_steps=args.max_steps, grad_clip=args.grad_clip, skip_nonfinite_steps=args.skip_nonfinite_steps,
        bf16=args.bf16, label_smoothing=args.label_smoothing,
        eval_steps=args.eval_steps, early_stopping_patience=args.early_stopping_patience,
        save_steps=args.save_steps, keep_checkpoints=args.keep_checkpoints, max_length=args.max_length,
        seed=args.seed, fast=not args.no_fast, tensorboard=not args.no_tensorboard)


def configure_logging(is_main: bool = True, quiet: bool = False) -> None:
    """Engine messages on stderr (warnings only with ``quiet`` and on non-main processes)."""
    logger = logging.getLogger("apt_fast.train")
    if not any(getattr(h, "_apt_fast", False) for h in logger.handlers):
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("%(message)s"))
        handler._apt_fast = True
        logger.addHandler(handler)
        logger.propagate = False
    logger.setLevel(logging.INFO if is_main and not quiet else logging.WARNING)


@contextmanager
def training_runtime(args: argparse.Namespace):
    """The process's runtime (joined to torchrun's group when launched by it), logging configured."""
    from ..train.distributed import init_runtime, shutdown_runtime

    runtime = init_runtime(requested_device(args))
    configure_logging(runtime.is_main, args.quiet)
    try:
        yield runtime
    finally:
        shutdown_runtime(runtime)
