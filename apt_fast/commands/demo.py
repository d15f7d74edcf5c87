"""`apt-fast demo`: train, fine-tune with freezing, distil, evaluate, time fast vs --no-fast, export."""

from __future__ import annotations

import argparse

from ._training import add_bf16_argument
from .progress import show_progress


def add_parser(subparsers) -> None:
    parser = subparsers.add_parser(
        "demo", help="end-to-end demonstration: train, fine-tune, distil, evaluate, speedup, export",
        description="Train a small APT model to sort the letters of words, fine-tune it (embedding and encoder "
                    "frozen) on longer words, distil it into a smaller student, score each before and after (exact "
                    "match, token accuracy, loss), time apt_fast against --no-fast on the same steps (the demo's "
                    "model and the APT benchmark configuration), and export the student to GGUF.")
    parser.add_argument("--workdir", default="demo-output", metavar="DIR",
                        help="output directory: new, empty, or made by an earlier demo, which is replaced; any "
                             "other directory is refused (default %(default)s)")
    parser.add_argument("--quick", action="store_true", help="a few seconds' version (smoke test)")
    parser.add_argument("--pruning", action="store_true",
                        help="train and fine-tune, then the pruning stage only: the fine-tuned model pruned "
                             "(magnitude 30/50/70/90%%, 2:4), scored after pruning and after prune-finetune; writes "
                             "pruning-accuracy.md and pruning-accuracy.png to --workdir")
    add_bf16_argument(parser)  # every training stage and the timed steps; scored in float32
    parser.add_argument("--threads", type=int, help="torch threads (default: torch's choice)")
    parser.add_argument("--seed", type=int, default=0, help="default %(default)s")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    import torch

    from ..demo import QUICK, DemoSize, run_demo

    if args.threads is not None:
        if args.threads < 1:
            raise ValueError(f"--threads must be >= 1, got {args.threads}")
        torch.set_num_threads(args.threads)
    run_demo(args.workdir, QUICK if args.quick else DemoSize(), seed=args.seed, progress=show_progress(args),
             pruning=args.pruning, bf16=args.bf16)
    return 0
