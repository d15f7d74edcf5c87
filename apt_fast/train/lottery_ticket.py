"""Iterative magnitude pruning with rewinding (the lottery ticket procedure): the engine of
``apt-fast lottery-ticket``.

Round 0 trains the dense model. Each round i = 1..K then prunes the smallest weights of the trained model to the
sparsity 1 - (1 - r)^i (r of the weights that were left: the pruned ones stay pruned), rewinds the surviving
weights, and everything else, to the rewind point (the model's initial weights, or those after ``rewind_step``
optimizer steps of round 0), and trains again with the masks held. Every round is scored and saved as a whole
(``save_path/round-<i>``, staged and renamed, masks included) before the next one starts, so Ctrl-C or a failure
leaves the rounds finished before it complete; the final ticket (the last round, masks removed) goes to
``save_path`` itself. Once every round is done, ``round-<j>`` directories beyond the last round (an earlier, longer
run's, replaced with --overwrite) are removed. Each round's training is the fine-tune Trainer's, in a scratch
directory that is removed.
"""

from __future__ import annotations

import math
import os
import re
import shutil
from dataclasses import dataclass, field
from typing import Callable, Dict, List

import torch
from torch import Tensor, nn

from .batching import epoch_batches
from .checkpointing import save_model_directory
from .config import TrainConfig
from .data import read_data_file
from .distributed import Runtime
from .finetune import run_language_model_training
from .inputs import load_tokenized
from .quality import Quality, measure_quality

SCRATCH = ".lottery-training"


def round_dir(save_path: str | os.PathLike, index: int) -> str:
    return os.path.join(os.fspath(save_path), f"round-{index}")


@dataclass(frozen=True)
class LotteryRound:
    index: int
    sparsity: float  # of the prunable layers' weights
    quality: Quality
    path: str
    report: object = None  # apt_fast.pruning.PruneReport of the round's pruning (None for round 0)


@dataclass
class LotteryResult:
    rounds: List[LotteryRound] = field(default_factory=list)
    rewind_step: int = 0
    evaluated_on: str = ""


def steps_per_round(samples: int, config: TrainConfig, world_size: int = 1) -> int:
    """The optimizer steps of one round's training, as the Trainer counts them."""
    micro_batches = len(epoch_batches(samples, config.batch_size, config.seed, 0, min_batch=world_size))
    steps = math.ceil(micro_batches / config.gradient_accumulation_steps) * config.epochs
    return steps if config.max_steps is None else min(steps, config.max_steps)


def _remove_later_rounds(save_path: str, last: int) -> None:
    """Remove the ``round-<j>`` directories with j > ``last``: an earlier run's, which this run did not replace."""
    for name in os.listdir(save_path):
        match = re.fullmatch(r"round-(\d+)", name)
        if match and int(match[1]) > last:
            shutil.rmtree(os.path.join(save_path, name))


def _snapshot(model: nn.Module) -> Dict[str, Tensor]:
    return {key: value.detach().clone() for key, value in model.state_dict().items()}


@torch.no_grad()
def rewind(model: nn.Module, weights: Dict[str, Tensor]) -> None:
    """Set every parameter and buffer to ``weights`` except the pruning masks, then zero what the masks prune."""
    from ..pruning import mask_of, masked_layers
    from ..pruning.masks import MASK

    state = model.state_dict()
    for key, value in weights.items():
        if not key.endswith("." + MASK):
            state[key].copy_(value)
    for module in masked_layers(model).values():
        module.weight.masked_fill_(~mask_of(module), 0)


def lottery_ticket(
    model: nn.Module,
    tokenizer,
    train_data_path: str | os.PathLike,
    val_data_path: str | os.PathLike | None,
    save_path: str | os.PathLike,
    *,
    iterations: int,
    ratio_per_iteration: float,
    scope: str = "layer",
    rewind_step: int = 0,
    config: TrainConfig,
    eval_samples: int,
    max_samples: int | None = None,
    runtime: Runtime | None = None,
    progress_bar: bool | None = None,
    on_round: Callable[[LotteryRound], None] | None = None,
) -> LotteryResult:
    """Run round 0 and ``iterations`` pruning rounds (see the module); ``on_round(round)`` after each is saved."""
    from ..pruning import MagnitudePruneConfig, prune

    save_path = os.fspath(save_path)
    train = load_tokenized(train_data_path, tokenizer, max_length=config.max_length, max_samples=max_samples)
    if val_data_path is not None:
        read_data_file(val_data_path, argument="--val-data-path")
    steps = steps_per_round(len(train), config, runtime.world_size if runtime else 1)
    if rewind_step > steps:
        raise ValueError(f"--rewind-step must be at most the {steps} optimizer steps of a round, got {rewind_step}")
    eval_path = val_data_path if val_data_path is not None else train_data_path
    argument = "--val-data-path" if val_data_path is not None else "--data-path"
    data = load_tokenized(eval_path, tokenizer, max_length=config.max_length, max_samples=eval_samples,
                          argument=argument)
    examples = read_data_file(eval_path, max_samples=eval_samples, argument=argument).examples
    result = LotteryResult(rewind_step=rewind_step, evaluated_on=f"{os.fspath(eval_path)}, first {len(data)} samples")
    rewind_to: Dict[str, Tensor] = {}

    def keep_rewind_point(trainer, state, loss) -> None:
        if state.step == rewind_step:
            rewind_to.update(_snapshot(model))

    if rewind_step == 0:
        rewind_to.update(_snapshot(model))
    scratch = os.path.join(save_path, SCRATCH)
    try:
        for index in range(iterations + 1):
            report = None
            if index:
                report = prune(model, MagnitudePruneConfig(1 - (1 - ratio_per_iteration) ** index, scope=scope))
                rewind(model, rewind_to)
            shutil.rmtree(scratch, ignore_errors=True)
            run_language_model_training(
                model, tokenizer, train_data_path=train_data_path, val_data_path=val_data_path, save_path=scratch,
                config=config, max_samples=max_samples, resume=None, overwrite=True,
                callbacks=[keep_rewind_point] if index == 0 and rewind_step else [], runtime=runtime,
                desc=f"round {index}", progress_bar=progress_bar,
                run_info={"command": "lottery-ticket", "round": index})
            quality = measure_quality(model, tokenizer, data, examples, batch_size=config.batch_size, bf16=config.bf16)
            path = round_dir(save_path, index)
            if runtime is None or runtime.is_main:
                save_model_directory(model, path, tokenizer)
            done = LotteryRound(index, report.sparsity if report else 0.0, quality, path, report)
            result.rounds.append(done)
            if on_round is not None:
                on_round(done)
        if runtime is None or runtime.is_main:
            _remove_later_rounds(save_path, iterations)
    except KeyboardInterrupt:
        last = f"{result.rounds[-1].path} holds the last complete round" if result.rounds else "no round completed"
        raise KeyboardInterrupt(f"interrupted in round {len(result.rounds)}; {last}") from None
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    return result
