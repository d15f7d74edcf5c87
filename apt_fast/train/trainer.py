"""The training loop shared by ``fine-tune``, ``train`` and ``distill``.

Per optimizer step, for each of its ``gradient_accumulation_steps`` micro-batches: the objective's terms
on this process's share of the global micro-batch (bf16 autocast optional, see :mod:`precision`), counts
all-reduced so the loss is the global per-token mean, backward of that loss divided by the number of
micro-batches; then gradients averaged over processes (once), global-norm clipping, AdamW, the learning-rate
schedule. Every ``eval_steps`` optimizer steps and after the last one it validates (early stopping, best model kept),
every ``save_steps`` it writes a resumable checkpoint. At the end it keeps best/ and last/ and saves the
final model by the rule in :mod:`checkpointing`. A resumed run restores model, optimizer, scheduler, RNG
state, data position and history, and goes on with the losses of an uninterrupted run.

Failures (see :mod:`errors`): a step whose loss or gradient norm is NaN or infinite is skipped or stops the
run (``skip_nonfinite_steps``); weights that are not finite are never saved; any other exception during
the run becomes a TrainingFailed naming the step and the last good checkpoint, which stays in place.
Ctrl-C and SIGTERM checkpoint and stop (see :mod:`interrupt`).
"""

from __future__ import annotations

import logging
import math
import os
import shutil
from dataclasses import asdict, dataclass, field
from typing import Callable, Sequence

import torch
from torch import nn

from ..models.apt.loading import load_weights
from .batching import TokenizedData, collate, epoch_batches
from .checkpointing import (
    FINAL_WEIGHTS_RULE,
    MODEL_FILE,
    TRAINER_STATE,
    CheckpointStore,
    holds_model,
    save_model,
    save_model_directory,
    set_rng_state,
    torch_save_atomic,
)
from .config import TrainConfig
from .distributed import Runtime
from .errors import NonFiniteError, TrainingError, TrainingFailed
from .evaluation import EvalResult, evaluate, special_ids
from .fast_path import apply_fast_path
from .interrupt import InterruptFlag, TrainingInterrupted
from .monitor import Monitor, tensorboard_dir
from .nonfinite import gradient_norm, nonfinite_parameters, step_problem
from .optim import build_optimizer, build_scheduler
from .precision import autocast, check_master_weights
from .resume import Resumable, find_resumable

logger = logging.getLogger("apt_fast.train")


@dataclass
class TrainState:
    """Everything besides weights, optimizer and RNG that a resumed run needs (saved in checkpoints)."""

    step: int = 0
    epoch: int = 0
    batch_in_epoch: int = 0  # micro-batches of the epoch done
    best_val_loss: float | None = None
    best_step: int | None = None
    bad_evals: int = 0
    stopped_early: bool = False
    history: list = field(default_factory=list)  # [{"step", "loss", "lr"}]; skipped steps left out
    skipped_steps: list = field(default_factory=list)  # steps whose update was skipped (non-finite loss or gradient)
    evals: list = field(default_factory=list)  # [{"step", "loss", "perplexity", "token_accuracy"}]


@dataclass(frozen=True)
class TrainResult:
    state: TrainState
    save_path: str
    final_weights: str  # "best" or "last": which of best/ and last/ the model in save_path is

    @property
    def losses(self) -> list[float]:
        return [h["loss"] for h in self.state.history]


def _load_model_weights(model: nn.Module, directory: str) -> None:
    from safetensors.torch import load_file

    path = os.path.join(directory, MODEL_FILE)
    load_weights(model, load_file(path, device=str(next(model.parameters()).device)), path)


class Trainer:
    """Runs ``objective`` on ``model`` over ``train_data``; writes under ``save_path`` (see checkpointing).

    ``callbacks`` are called as ``callback(trainer, state, loss)`` after every optimizer step; one may
    call :meth:`request_stop`, which behaves as Ctrl-C (checkpoint, then :class:`TrainingInterrupted`);
    an exception a callback raises stops the run as any other (TrainingFailed).
    ``progress_bar``: the tqdm bar on stderr; None (the default) shows it when stderr is a terminal.
    """

    def __init__(
        self,
        model: nn.Module,
        tokenizer,
        objective: Callable,
        train_data: TokenizedData,
        val_data: TokenizedData | None,
        config: TrainConfig,
        save_path: str | os.PathLike,
        *,
        runtime: Runtime | None = None,
        desc: str = "train",
        callbacks: Sequence[Callable] = (),
        run_info: dict | None = None,
        progress_bar: bool | None = None,
    ):
        self.model = model
        self.tokenizer = tokenizer
        self.objective = objective
        self.train_data = train_data
        self.val_data = val_data
        self.config = config
        self.store = CheckpointStore(save_path, keep=config.keep_checkpoints)
        self.runtime = runtime or Runtime(0, 1, next(model.parameters()).device)
        self.desc = desc
        self.callbacks = list(callbacks)
        self.run_info = dict(run_info or {})
        self.progress_bar = progress_bar
        self._interrupt = InterruptFlag()
        self._stop_requested = False

    def request_stop(self) -> None:
        self._stop_requested = True

    # ------------------------------------------------------------------ set-up

    def _prepare_save_path(self, overwrite: bool, resuming: bool) -> None:
        if not resuming and not overwrite and holds_model(self.store.save_path):
            self.store.prepare(overwrite=False, resuming=False)  # raises on every process
        self.runtime.barrier()
        if self.runtime.is_main:
            self.store.prepare(overwrite=overwrite, resuming=resuming)
        self.runtime.barrier()

    def _restore(self, checkpoint: Resumable, optimizer, scheduler) -> TrainState:
        directory, saved = checkpoint.path, checkpoint.saved
        state = TrainState(**saved["state"])
        try:
            optimizer.load_state_dict(saved["optimizer"])
        except ValueError as err:
            raise ValueError(f"--resume {directory}: the optimizer state does not match the trainable parameters "
                             f"(were the freeze settings different?): {err}") from None
        scheduler.load_state_dict(saved["scheduler"])
        changed = {k: (v, getattr(self.config, k)) for k, v in saved["config"].items()
                   if getattr(self.config, k, v) != v}
        if changed:
            logger.warning("resuming with settings that differ from the checkpoint's (saved, now): %s", changed)
        if checkpoint.rng is not None:
            set_rng_state(checkpoint.rng)
        return state

    # ------------------------------------------------------------------ one step

    def _forward_backward(self, batch, scale: float) -> tuple[float, int, bool]:
        """Backward of one micro-batch's loss times ``scale``, gradients accumulating in ``.grad``; returns
        (global loss, global tokens, whether any process asked to stop)."""
        runtime = self.runtime
        with autocast(runtime.device, self.config.bf16):
            terms = self.objective(self.model, batch)
        sums = [s for s, _ in terms.values()]
        stop = self._stop_requested or self._interrupt.requested
        local = torch.stack([*(c.to(torch.float64).cpu() for _, c in terms.values()),
                             *(s.detach().to(torch.float64).cpu() for s in sums),
                             torch.tensor(float(batch.num_tokens), dtype=torch.float64),
                             torch.tensor(float(stop), dtype=torch.float64)])  # [2K + 2]
        reduced = runtime.all_reduce_sum(local.to(runtime.device)).cpu()
        k = len(sums)
        counts = reduced[:k].clamp_min(1.0)
        loss = sum(s / counts[i].item() for i, s in enumerate(sums)) * runtime.world_size
        (loss * scale).backward()
        return float((reduced[k: 2 * k] / counts).sum()), int(reduced[2 * k]), bool(reduced[2 * k + 1] > 0)

    def _step(self, micro_batches: list, optimizer, scheduler, params) -> tuple[float, int, bool, str | None]:
        """One optimizer step on the gradient of the mean loss of ``micro_batches``, its update skipped when
        that loss or the gradient norm is not finite; returns (that mean global loss, global tokens, whether
        any process asked to stop, what was not finite or None). Every process takes the same decision: the
        loss is all-reduced and the gradients averaged before they are looked at."""
        self.model.train()
        results = [self._forward_backward(batch, 1.0 / len(micro_batches)) for batch in micro_batches]
        self.runtime.average_gradients(params)
        losses, tokens, stops = zip(*results)
        loss = sum(losses) / len(losses)
        problem = step_problem(loss, gradient_norm(params, self.config.grad_clip))
        if problem is None:
            optimizer.step()
        scheduler.step()
        optimizer.zero_grad(set_to_none=True)
        return loss, sum(tokens), any(stops), problem

    def _nonfinite_step(self, state: TrainState, problem: str, loss: float, monitor: Monitor) -> None:
        """Skip the update of step ``state.step`` while skip_nonfinite_steps allows, else stop the run."""
        limit, skipped = self.config.skip_nonfinite_steps, len(state.skipped_steps)
        if skipped >= limit:
            shown_loss = f"loss {loss:.4f}, " if math.isfinite(loss) else ""
            after = (f" after {skipped} skipped step{'s' if skipped > 1 else ''} (--skip-nonfinite-steps {limit})"
                     if limit else "")
            error = NonFiniteError(f"{problem} at step {state.step} ({shown_loss}learning rate "
                                   f"{self.config.learning_rate:g}){after}", step=state.step,
                                   checkpoint=self.store.newest())
            self._write_log(state, "failed", error=str(error))
            raise error
        state.skipped_steps.append(state.step)
        monitor.log(f"step {state.step}: {problem}: update skipped ({skipped + 1} of at most {limit} such steps)")

    def _require_finite_weights(self, state: TrainState) -> None:
        """Raise NonFiniteError when a weight is NaN or infinite: nothing of that kind is ever saved."""
        bad = nonfinite_parameters(self.model)
        if bad:
            more = f" and {len(bad) - 3} more" if len(bad) > 3 else ""
            raise NonFiniteError(f"the weights are not finite after step {state.step} (learning rate "
                                 f"{self.config.learning_rate:g}): {', '.join(bad[:3])}{more}", step=state.step,
                                 checkpoint=self.store.newest())

    # ------------------------------------------------------------------ writing

    def _checkpoint(self, state: TrainState, optimizer, scheduler) -> str:
        """Write the resumable checkpoint of ``state.step``; on any failure (a full disk, a second Ctrl-C)
        its staging directory is removed and the older checkpoints stay as they were."""
        self._require_finite_weights(state)
        staging = self.store.staging_dir(state.step)
        try:
            if self.runtime.is_main:
                shutil.rmtree(staging, ignore_errors=True)
                save_model(self.model, staging, self.tokenizer)
                torch_save_atomic({"state": asdict(state), "optimizer": optimizer.state_dict(),
                                   "scheduler": scheduler.state_dict(), "config": self.config.to_dict(),
                                   "world_size": self.runtime.world_size}, os.path.join(staging, TRAINER_STATE))
            self.runtime.barrier()
            self.store.write_rng(staging, self.runtime.rank)
            self.runtime.barrier()
            if self.runtime.is_main:
                self.store.commit(state.step)
        except BaseException:
            if self.runtime.is_main:
                shutil.rmtree(staging, ignore_errors=True)
            raise
        self.runtime.barrier()
        return os.path.join(self.store.checkpoint_dir, f"step-{state.step}")

    def _write_log(self, state: TrainState, final_weights: str, **extra) -> None:
        """training_log.json; ``final_weights``: "best" or "last" (see FINAL_WEIGHTS_RULE), "interrupted" or
        "failed"."""
        if self.runtime.is_main:
            self.store.write_log({**self.run_info, "settings": self.config.to_dict(), "final_weights": final_weights,
                                  "final_weights_rule": FINAL_WEIGHTS_RULE, **extra, **asdict(state)})

    def _validate(self, state: TrainState, monitor: Monitor, last: bool) -> None:
        """Evaluate; a finite loss lower than every earlier one saves best/. ``last``: the run's last step,
        where early stopping has nothing left to stop."""
        result: EvalResult = evaluate(self.model, self.val_data, self.tokenizer, batch_size=self.config.batch_size,
                                      runtime=self.runtime, bf16=self.config.bf16)
        state.evals.append({"step": state.step, "loss": result.loss, "perplexity": result.perplexity,
                            "token_accuracy": result.token_accuracy})
        monitor.scalars(state.step, {"val/loss": result.loss, "val/perplexity": result.perplexity,
                                     "val/token_accuracy": result.token_accuracy})
        finite = math.isfinite(result.loss)
        if finite and (state.best_val_loss is None or result.loss < state.best_val_loss):
            self._require_finite_weights(state)
            state.best_val_loss, state.best_step, state.bad_evals = result.loss, state.step, 0
            if self.runtime.is_main:
                save_model_directory(self.model, self.store.best_dir, self.tokenizer)
            self.runtime.barrier()
            verdict = "best so far, saved"
        else:
            state.bad_evals += 1
            patience = self.config.early_stopping_patience
            verdict = ("no improvement" if finite else "not finite, never the best") + \
                f" ({state.bad_evals}/{patience or 'inf'})"
            state.stopped_early = bool(patience) and state.bad_evals >= patience and not last
        monitor.log(f"step {state.step}: validation {result.describe()}: {verdict}")

    # ------------------------------------------------------------------ the loop

    def train(self, *, resume: str | None = None, overwrite: bool = False) -> TrainResult:
        """Train; ``resume`` is 'latest' (the newest readable checkpoint) or a checkpoint directory.
        Returns the final state."""
        config, runtime = self.config, self.runtime
        check_master_weights(self.model, config.bf16)
        self._prepare_save_path(overwrite, resuming=resume is not None)
        self.model.to(runtime.device)
        apply_fast_path(self.model, config.fast)
        checkpoint = find_resumable(self.store, resume, runtime) if resume is not None else None
        if checkpoint is not None:
            load_weights(self.model, checkpoint.weights, os.path.join(checkpoint.path, MODEL_FILE))
        runtime.broadcast_parameters(self.model)
        params = [p for p in self.model.parameters() if p.requires_grad]
        optimizer = build_optimizer(self.model, config)
        micro_batches_per_epoch = len(epoch_batches(len(self.train_data), config.batch_size, config.seed, 0,
                                                    min_batch=runtime.world_size))
        steps_per_epoch = math.ceil(micro_batches_per_epoch / config.gradient_accumulation_steps)
        if steps_per_epoch == 0:
            raise ValueError(f"batch_size {config.batch_size} leaves no batch: {len(self.train_data)} samples for "
                             f"{runtime.world_size} processes")
        total = config.epochs * steps_per_epoch if config.max_steps is None else min(config.max_steps,
                                                                                     config.epochs * steps_per_epoch)
        scheduler = build_scheduler(optimizer, config, total)
        if checkpoint is not None:
            state = self._restore(checkpoint, optimizer, scheduler)
            logger.info("resumed from %s at step %d", checkpoint.path, state.step)
        else:
            state = TrainState()
            torch.manual_seed(config.seed)
        pad, bos, eos = special_ids(self.model, self.tokenizer)
        monitor = Monitor(total_steps=total, initial_step=state.step, desc=self.desc, enabled=runtime.is_main,
                          log_dir=tensorboard_dir(self.store.save_path) if config.tensorboard else None,
                          progress_bar=self.progress_bar)
        try:
            try:
                with self._interrupt:
                    self._loop(state, optimizer, scheduler, params, monitor, total, (pad, bos, eos))
            finally:
                monitor.close()
            return self._finish(state)
        except (TrainingInterrupted, TrainingError):
            raise
        except BaseException as err:
            if self._interrupt.forced:  # what a second signal interrupted may have raised something else
                raise TrainingInterrupted(self.store.newest(), state.step, signum=self._interrupt.signum,
                                          at_once=True) from None
            if not isinstance(err, Exception):
                raise
            raise TrainingFailed(err, step=state.step, checkpoint=self.store.newest()) from err

    def _finish(self, state: TrainState) -> TrainResult:
        """Save last/ and the final model, best/ or last/ by FINAL_WEIGHTS_RULE, and say which it is."""
        runtime = self.runtime
        self._require_finite_weights(state)
        if runtime.is_main:
            save_model_directory(self.model, self.store.last_dir, self.tokenizer)
        runtime.barrier()
        final_weights = "best" if state.best_step is not None and os.path.isdir(self.store.best_dir) else "last"
        if final_weights == "best":
            _load_model_weights(self.model, self.store.best_dir)
        if runtime.is_main:
            save_model(self.model, self.store.save_path, self.tokenizer)
        final_step = state.best_step if final_weights == "best" else state.step
        self._write_log(state, final_weights, final_step=final_step)
        logger.info("%s", self._describe_final(state, final_weights))
        runtime.barrier()
        return TrainResult(state, self.store.save_path, final_weights)

    def _describe_final(self, state: TrainState, final_weights: str) -> str:
        last_loss = f", training loss {state.history[-1]['loss']:.4f}" if state.history else ""
        last = f"step {state.step}{last_loss}"
        if final_weights == "best":
            return (f"saved the model to {self.store.save_path}: best/, the weights of step {state.best_step} "
                    f"(validation loss {state.best_val_loss:.4f}, the lowest of {len(state.evals)} evaluations); "
                    f"last/ holds {last}")
        why = "no validation data" if self.val_data is None else "no finite validation loss"
        return f"saved the model to {self.store.save_path}: last/, the weights of {last} ({why})"

    def _collate(self, step_batches: list[list[int]], special) -> list:
        """This process's share of each global micro-batch of one step, on its device."""
        pad, bos, eos = special
        runtime = self.runtime
        return [collate(self.train_data, indices, pad_id=pad, bos_id=bos, eos_id=eos, rank=runtime.rank,
                        world_size=runtime.world_size).to(runtime.device) for indices in step_batches]

    def _loop(self, state, optimizer, scheduler, params, monitor, total, special) -> None:
        config, runtime = self.config, self.runtime
        accumulation = config.gradient_accumulation_steps
        while state.step < total and not state.stopped_early:
            batches = epoch_batches(len(self.train_data), config.batch_size, config.seed, state.epoch,
                                    min_batch=runtime.world_size)
            while state.batch_in_epoch < len(batches) and state.step < total:
                step_batches = batches[state.batch_in_epoch: state.batch_in_epoch + accumulation]
                loss, tokens, stop, problem = self._step(self._collate(step_batches, special), optimizer, scheduler,
                                                         params)
                state.step += 1
                state.batch_in_epoch += len(step_batches)
                lr = scheduler.get_last_lr()[0]
                if problem is None:
                    state.history.append({"step": state.step, "loss": loss, "lr": lr})
                else:
                    self._nonfinite_step(state, problem, loss, monitor)
                monitor.step(state.step, loss, lr, tokens)
                for callback in self.callbacks:
                    callback(self, state, loss)
                if not runtime.distributed:  # with several processes the flag is agreed on in the next step
                    stop = stop or self._stop_requested or self._interrupt.requested
                last = state.step == total
                if self.val_data is not None and (state.step % config.eval_steps == 0 or last):
                    self._validate(state, monitor, last)
                if stop:
                    path = self._checkpoint(state, optimizer, scheduler)
                    self._write_log(state, "interrupted")
                    interrupted = TrainingInterrupted(path, state.step, signum=self._interrupt.signum)
                    by = f" by {interrupted.signal}" if interrupted.signal else ""
                    monitor.log(f"interrupted{by} at step {state.step}: resumable checkpoint {path} "
                                f"(continue with --resume)")
                    raise interrupted
                if state.step % config.save_steps == 0:
                    path = self._checkpoint(state, optimizer, scheduler)
                    monitor.log(f"step {state.step}: checkpoint {path}")
                if state.stopped_early:
                    monitor.log(f"early stopping at step {state.step}: no better validation loss in "
                                f"{config.early_stopping_patience} evaluations (best {state.best_val_loss:.4f} at "
                                f"step {state.best_step})")
                    return
            if state.batch_in_epoch >= len(batches):
                state.epoch += 1
                state.batch_in_epoch = 0
