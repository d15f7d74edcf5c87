"""`apt-fast prune-finetune`: prune a model, then fine-tune it with the pruned weights held at zero; scores before
pruning, after pruning and after fine-tuning, and sparsity.png with both."""

from __future__ import annotations

import argparse
import os

from ..train.config import TrainConfig
from ._pruning import PLOT_FILE, add_pruning_arguments, prune_model, pruning_config
from ._training import add_training_arguments, check_save_path, int_at_least, train_config_from_args, training_runtime
from .fine_tune import add_freeze_arguments, freeze
from .progress import show_progress

STAGES = ("dense", "pruned", "fine-tuned")


def add_parser(subparsers) -> None:
    parser = subparsers.add_parser(
        "prune-finetune", help="prune a model, then fine-tune it with the pruned weights held at zero",
        description="Prune the model as `apt-fast prune` does, then fine-tune it as `apt-fast fine-tune` does (the "
                    "same options, checkpoints, best model and --resume) while the pruned weights stay exactly "
                    "zero. Prints the per-layer sparsity table and the loss, token accuracy and exact match before "
                    "pruning, after pruning and after fine-tuning (on --val-data-path, or on --data-path without "
                    "it), and writes the model and sparsity.png (per-layer sparsity; loss and exact match at each "
                    "stage) to --save-path.")
    parser.add_argument("--model-path", required=True, metavar="PATH", help="the pretrained model (any APT checkpoint)")
    add_pruning_arguments(parser, type_required=False, calibration_option=False)
    add_training_arguments(parser, TrainConfig(), save_path="apt_model_pruned", epochs_flag="--finetune-epochs",
                           epochs_help="passes of fine-tuning after pruning; ")
    add_freeze_arguments(parser)
    parser.add_argument("--eval-samples", type=int_at_least(1), default=256, metavar="N",
                        help="score the first N evaluation samples at each stage (default %(default)s)")
    parser.set_defaults(run=run)


def _print_scores(result) -> None:
    print(f"scores on {result.evaluated_on}:")
    print(f"  {'stage':<10}  {'loss':>8}  {'token accuracy':>14}  {'exact match':>11}")
    for stage, quality in zip(STAGES, (result.dense, result.pruned, result.tuned)):
        match = "-" if quality.exact_match is None else f"{100 * quality.exact_match:.2f}%"
        print(f"  {stage:<10}  {quality.loss:8.4f}  {100 * quality.token_accuracy:13.2f}%  {match:>11}")


def run(args: argparse.Namespace) -> int:
    from ..pruning import remove_masks
    from ..train.checkpointing import save_model
    from ..train.finetune import FineTuner
    from ..train.inputs import load_tokenized
    from ..train.prune_finetune import prune_and_fine_tune
    from ..train.sparsity_plot import QualityCurve, render_sparsity_plot, write_plot

    config = pruning_config(args, calibrated=True)  # taylor and wanda calibrate on the first training samples
    check_save_path(args)
    train_config = train_config_from_args(args)

    def prune_step(model):
        calibration = load_tokenized(args.data_path, finetuner.tokenizer, max_length=train_config.max_length,
                                     max_samples=args.calibration_samples)
        report = prune_model(model, finetuner.tokenizer, config, args, calibration,
                             batch_size=train_config.batch_size)
        print(report.table(), flush=True)
        return report

    with training_runtime(args) as runtime:
        finetuner = FineTuner(args.model_path, runtime=runtime)
        freeze(finetuner, args)
        result = prune_and_fine_tune(finetuner, prune_step, args.data_path, args.val_data_path, args.save_path,
                                     config=train_config, eval_samples=args.eval_samples, max_samples=args.max_samples,
                                     resume=args.resume, overwrite=args.overwrite, progress_bar=show_progress(args))
        if not runtime.is_main:
            return 0
    _print_scores(result)
    qualities = (result.dense, result.pruned, result.tuned)
    curve = QualityCurve("stage", [0, 1, 2], STAGES, [q.loss for q in qualities], [q.exact_match for q in qualities],
                         categorical=True)
    report = result.report
    png = render_sparsity_plot([(x.name, x.sparsity) for x in report.layers], report.sparsity,
                               f"apt-fast prune-finetune --prune-type {args.prune_type}: {args.model_path}", curve)
    model = finetuner.model
    remove_masks(model)
    save_model(model, args.save_path, finetuner.tokenizer)  # the final model without its masks: an ordinary model
    write_plot(os.path.join(args.save_path, PLOT_FILE), png)
    print(f"wrote {args.save_path} ({PLOT_FILE}: per-layer sparsity, loss and exact match by stage)")
    return 0
