"""TrainConfig: the validated settings of a training, fine-tuning or distillation run."""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields

from ..validation import check_choice, check_in_range

SCHEDULES = ("cosine", "linear", "constant")


def _check_int(name: str, value, minimum: int, allow_none: bool = False) -> None:
    if value is None and allow_none:
        return
    if not isinstance(value, int) or isinstance(value, bool) or value < minimum:
        allowed = f"an int >= {minimum}" + (" or None" if allow_none else "")
        raise ValueError(f"{name} must be {allowed}, got {value!r}")


@dataclass(frozen=True)
class TrainConfig:
    """Settings of the training loop (defaults: the fine-tuning guide's).

    epochs, batch_size: passes over the data; the **global** batch (split over data-parallel processes).
    gradient_accumulation_steps: micro-batches of batch_size that run forward and backward before each optimizer
        step (an epoch's last step takes those left), each loss scaled so that the step follows the mean of their
        losses; as each loss is a per-token mean, this is one step on an N times larger batch when the
        micro-batches hold equal numbers of target tokens. Every step count (max_steps, warmup_steps, eval_steps,
        save_steps, the step-N checkpoints that resume reads) counts optimizer steps.
    learning_rate, weight_decay: AdamW; weight decay applies to matrices only (not biases, norms, tau).
    warmup_steps: linear warm-up from 0; None means 10% of the total steps.
    schedule: after warm-up, 'cosine' or 'linear' decay to 0, or 'constant'.
    max_steps: stop after this many optimizer steps (None: epochs decide); the schedule spans the run.
    grad_clip: clip the global gradient norm to this (0 disables).
    skip_nonfinite_steps: a step whose loss or gradient norm (before clipping) is NaN or infinite stops the run
        with a NonFiniteError naming the step and the last good checkpoint; with N > 0 the first N such steps
        are skipped instead (gradients dropped, no optimizer update; the step counts, the schedule moves on,
        its loss stays out of the history) and the (N+1)-th stops the run.
    bf16: run forward and loss under bfloat16 autocast; weights, gradients and optimizer stay float32 (see
        :mod:`apt_fast.train.precision`; a model whose trainable weights are not float32 is refused).
    label_smoothing: of the cross-entropy (upstream's fine-tuner: 0).
    eval_steps, early_stopping_patience: validate every eval_steps steps and after the last step (when there
        is validation data); stop after `patience` evaluations without a better validation loss (0 disables
        early stopping). The final model is the best by validation loss, else the last (see checkpointing).
    save_steps, keep_checkpoints: write a resumable checkpoint every save_steps steps; keep the newest few.
    max_length: tokens per source / target sequence; longer samples are truncated (and counted).
    seed: data order, initialisation and dropout.
    fast: use apt_fast's kernels (apt_fast.patch) when available; False runs the plain PyTorch modules.
    tensorboard: write TensorBoard event logs under <save_path>/runs when tensorboard is installed.
    """

    epochs: int = 5
    batch_size: int = 8
    gradient_accumulation_steps: int = 1
    learning_rate: float = 1e-5
    weight_decay: float = 0.01
    warmup_steps: int | None = None
    schedule: str = "cosine"
    max_steps: int | None = None
    grad_clip: float = 1.0
    skip_nonfinite_steps: int = 0
    bf16: bool = False
    label_smoothing: float = 0.0
    eval_steps: int = 100
    early_stopping_patience: int = 3
    save_steps: int = 500
    keep_checkpoints: int = 2
    max_length: int = 512
    seed: int = 42
    fast: bool = True
    tensorboard: bool = True

    def __post_init__(self) -> None:
        for name, minimum in (("epochs", 1), ("batch_size", 1), ("gradient_accumulation_steps", 1), ("eval_steps", 1),
                              ("save_steps", 1), ("keep_checkpoints", 1), ("max_length", 2),
                              ("early_stopping_patience", 0), ("seed", 0),
                              ("skip_nonfinite_steps", 0)):
            _check_int(name, getattr(self, name), minimum)
        _check_int("warmup_steps", self.warmup_steps, 0, allow_none=True)
        _check_int("max_steps", self.max_steps, 1, allow_none=True)
        check_in_range("learning_rate", self.learning_rate, 0.0, float("inf"), low_open=True)
        check_in_range("weight_decay", self.weight_decay, 0.0, float("inf"))
        check_in_range("grad_clip", self.grad_clip, 0.0, float("inf"))
        check_in_range("label_smoothing", self.label_smoothing, 0.0, 1.0, high_open=True)
        check_choice("schedule", self.schedule, SCHEDULES)

    @classmethod
    def from_overrides(cls, base: "TrainConfig | None" = None, **overrides) -> "TrainConfig":
        """``base`` (default: the defaults) with ``overrides`` applied; unknown names are a ValueError."""
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(overrides) - known)
        if unknown:
            raise ValueError(f"unknown training settings {unknown}; expected some of {sorted(known)}")
        return cls(**{**asdict(base or cls()), **overrides})

    def to_dict(self) -> dict:
        return asdict(self)


# Training from scratch (`train`, and the student of `distill`) uses a larger learning rate than fine-tuning.
TRAIN_DEFAULTS = TrainConfig(learning_rate=3e-4)
DISTILL_DEFAULTS = TRAIN_DEFAULTS
