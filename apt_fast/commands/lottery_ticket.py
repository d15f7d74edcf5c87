"""`apt-fast lottery-ticket`: iterative magnitude pruning with rewinding; every round saved, the final ticket and
sparsity.png (per-layer sparsity; loss and exact match against sparsity over the rounds)."""

from __future__ import annotations

import argparse
import os

from ..pruning.configs import SCOPES
from ..train.config import TrainConfig
from ._pruning import PLOT_FILE, ratio_type, refuse_existing_output
from ._training import add_training_arguments, int_at_least, train_config_from_args, training_runtime
from .import_gguf import MODEL_FILES
from .progress import show_progress


def add_parser(subparsers) -> None:
    parser = subparsers.add_parser(
        "lottery-ticket", help="iterative magnitude pruning with rewinding to early weights (lottery ticket)",
        description="Train the model (round 0), then K times: prune the smallest weights (--prune-ratio-per-iter of "
                    "those left), rewind the surviving weights to the model's initial weights (or to those after "
                    "--rewind-step optimizer steps of round 0) and train again with the pruned weights held at zero. "
                    "Each round is scored (loss, token accuracy, exact match on --val-data-path, or on --data-path "
                    "without it) and saved whole to --save-path/round-<i> before the next starts, so Ctrl-C keeps "
                    "the rounds already done; the final ticket and sparsity.png go to --save-path.")
    parser.add_argument("--model-path", required=True, metavar="PATH", help="the model (any APT checkpoint)")
    parser.add_argument("--iterations", required=True, type=int_at_least(1), metavar="K",
                        help="pruning rounds after the dense round 0")
    parser.add_argument("--prune-ratio-per-iter", required=True, type=ratio_type, metavar="R",
                        help="the share of the remaining weights each round prunes, in [0, 1): after K rounds "
                             "1 - (1 - R)^K of the weights are pruned")
    parser.add_argument("--rewind-step", type=int_at_least(0), default=0, metavar="S",
                        help="rewind to the weights after S optimizer steps of round 0 (default 0: the initial "
                             "weights)")
    parser.add_argument("--scope", choices=SCOPES, default="layer",
                        help="one magnitude threshold per layer, or over all layers (default %(default)s)")
    add_training_arguments(parser, TrainConfig(), save_path="apt_model_lottery", epochs_flag="--epochs-per-iter",
                           epochs_help="passes of training in each round; ", resumable=False)
    parser.add_argument("--eval-samples", type=int_at_least(1), default=256, metavar="N",
                        help="score the first N evaluation samples after each round (default %(default)s)")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from ..pruning import remove_masks
    from ..train.checkpointing import save_model
    from ..train.inputs import load_pretrained
    from ..train.lottery_ticket import lottery_ticket
    from ..train.sparsity_plot import QualityCurve, render_sparsity_plot, write_plot

    refuse_existing_output("--save-path", args.save_path, args.overwrite, (*MODEL_FILES, PLOT_FILE, "round-0"))
    config = train_config_from_args(args)
    def show(done) -> None:
        match = "" if done.quality.exact_match is None else f", exact match {100 * done.quality.exact_match:.2f}%"
        print(f"round {done.index}: sparsity {100 * done.sparsity:.2f}%, loss {done.quality.loss:.4f}{match} "
              f"-> {done.path}", flush=True)

    with training_runtime(args) as runtime:
        model, tokenizer = load_pretrained(args.model_path)
        result = lottery_ticket(model, tokenizer, args.data_path, args.val_data_path, args.save_path,
                                iterations=args.iterations, ratio_per_iteration=args.prune_ratio_per_iter,
                                scope=args.scope, rewind_step=args.rewind_step, config=config,
                                eval_samples=args.eval_samples, max_samples=args.max_samples, runtime=runtime,
                                progress_bar=show_progress(args), on_round=show)
        if not runtime.is_main:
            return 0
    final = result.rounds[-1]
    print(final.report.table())
    rounds = result.rounds
    curve = QualityCurve("sparsity (% of the prunable weights)", [100 * r.sparsity for r in rounds],
                         [f"round {r.index}" for r in rounds], [r.quality.loss for r in rounds],
                         [r.quality.exact_match for r in rounds])
    png = render_sparsity_plot([(x.name, x.sparsity) for x in final.report.layers], final.report.sparsity,
                               f"apt-fast lottery-ticket: {args.model_path}, {args.iterations} rounds", curve)
    remove_masks(model)
    save_model(model, args.save_path, tokenizer)
    write_plot(os.path.join(args.save_path, PLOT_FILE), png)
    rewound = f"step {args.rewind_step} of round 0" if args.rewind_step else "the initial weights"
    print(f"wrote {args.save_path}: the final ticket (round {final.index}, {100 * final.sparsity:.2f}% sparse, "
          f"rewound to {rewound} each round), round-0 ... round-{final.index}, {PLOT_FILE} (per-layer sparsity; "
          f"loss and exact match against sparsity)")
    return 0
