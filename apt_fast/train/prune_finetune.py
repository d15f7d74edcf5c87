"""Prune, then fine-tune with the masks held: the engine of ``apt-fast prune-finetune``.

The model is scored (loss, token accuracy, exact match) on the evaluation samples before pruning, after pruning
and after fine-tuning. Fine-tuning is the fine-tune command's (:class:`FineTuner`, the same Trainer, checkpoints,
best model and resume); the pruned weights stay exactly zero through it (apt_fast.pruning's masks: gradient hook
and re-masking after every optimizer step), and structured pruning trains the smaller model.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from typing import Callable

from torch import nn

from .config import TrainConfig
from .data import read_data_file
from .finetune import FineTuner
from .inputs import load_tokenized
from .quality import Quality, measure_quality

logger = logging.getLogger("apt_fast.train")


@dataclass(frozen=True)
class PruneFineTuneResult:
    report: object  # apt_fast.pruning.PruneReport
    dense: Quality
    pruned: Quality
    tuned: Quality
    evaluated_on: str  # "<path>, first N samples"


def prune_and_fine_tune(
    finetuner: FineTuner,
    prune_step: Callable[[nn.Module], object],
    train_data_path: str | os.PathLike,
    val_data_path: str | os.PathLike | None,
    save_path: str | os.PathLike,
    *,
    config: TrainConfig,
    eval_samples: int,
    max_samples: int | None = None,
    resume: str | None = None,
    overwrite: bool = False,
    progress_bar: bool | None = None,
) -> PruneFineTuneResult:
    """Score ``finetuner.model``, prune it with ``prune_step(model) -> PruneReport``, score it, fine-tune it (saved
    to ``save_path`` as fine-tune does, masks included) and score it again. Scores are taken on the first
    ``eval_samples`` samples of ``val_data_path`` (of ``train_data_path`` without it)."""
    read_data_file(train_data_path, max_samples=max_samples)  # both files checked before any work
    if val_data_path is not None:
        read_data_file(val_data_path, argument="--val-data-path")
    eval_path = val_data_path if val_data_path is not None else train_data_path
    argument = "--val-data-path" if val_data_path is not None else "--data-path"
    model, tokenizer = finetuner.model, finetuner.tokenizer
    data = load_tokenized(eval_path, tokenizer, max_length=config.max_length, max_samples=eval_samples,
                          argument=argument)
    examples = read_data_file(eval_path, max_samples=eval_samples, argument=argument).examples

    def score(stage: str) -> Quality:
        quality = measure_quality(model, tokenizer, data, examples, batch_size=config.batch_size, bf16=config.bf16)
        logger.info("%s: %s", stage, quality.describe())
        return quality

    dense = score("dense")
    report = prune_step(model)
    pruned = score("pruned")
    finetuner.fine_tune(train_data_path, val_data_path, save_path, max_samples=max_samples, resume=resume,
                        overwrite=overwrite, config=config, progress_bar=progress_bar)
    tuned = score("fine-tuned")
    return PruneFineTuneResult(report, dense, pruned, tuned, f"{os.fspath(eval_path)}, first {len(data)} samples")
