"""`apt-fast fine-tune`: fine-tune a pretrained APT model (the fine-tuning guide's command line)."""

from __future__ import annotations

import argparse

from ..train.config import TrainConfig
from ._training import add_training_arguments, check_save_path, int_at_least, train_config_from_args, training_runtime
from .progress import show_progress


def add_parser(subparsers) -> None:
    parser = subparsers.add_parser(
        "fine-tune", help="fine-tune a pretrained APT model",
        description="Fine-tune a pretrained APT model, optionally freezing the embedding and the first encoder/"
                    "decoder layers; evaluates on --val-data-path every --eval-steps with early stopping, keeps "
                    "the best model, writes resumable checkpoints every --save-steps. Data-parallel with "
                    "`torchrun --nproc-per-node N -m apt_fast.cli fine-tune ...`.")
    parser.add_argument("--model-path", required=True, metavar="PATH", help="the pretrained model (any APT checkpoint)")
    add_training_arguments(parser, TrainConfig(), save_path="apt_model_finetuned")
    add_freeze_arguments(parser)
    parser.set_defaults(run=run)


def add_freeze_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--freeze-embeddings", action="store_true",
                        help="freeze the token embedding (tied to the output projection)")
    parser.add_argument("--freeze-encoder-layers", type=int_at_least(0), metavar="N",
                        help="freeze the first N encoder layers")
    parser.add_argument("--freeze-decoder-layers", type=int_at_least(0), metavar="N",
                        help="freeze the first N decoder layers")


def freeze(finetuner, args: argparse.Namespace) -> None:
    """Freeze what the flags ask for; a count beyond the model's layers is an error naming the flag."""
    from ..train.freezing import FreezeCountError

    try:
        finetuner.freeze_layers(freeze_embeddings=args.freeze_embeddings,
                                freeze_encoder_layers=args.freeze_encoder_layers,
                                freeze_decoder_layers=args.freeze_decoder_layers)
    except FreezeCountError as err:
        flag = "--" + err.parameter.replace("_", "-")
        raise ValueError(f"{flag} is {err.value}, but the model has {err.layers} {err.kind} layers") from None


def run(args: argparse.Namespace) -> int:
    from ..train.finetune import FineTuner

    check_save_path(args)
    config = train_config_from_args(args)
    with training_runtime(args) as runtime:
        finetuner = FineTuner(args.model_path, runtime=runtime)
        freeze(finetuner, args)
        finetuner.fine_tune(args.data_path, args.val_data_path, args.save_path, max_samples=args.max_samples,
                            resume=args.resume, overwrite=args.overwrite, config=config,
                            progress_bar=show_progress(args))
    return 0
