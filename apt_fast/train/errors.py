"""The training engine's errors that the command line prints as one line.

They are ValueErrors, as apt_fast's other one-line errors (CheckpointError, GGUFError): ``apt-fast
fine-tune | train | distill`` print ``apt-fast COMMAND: error: MESSAGE``. An error of a run that had begun
names the step and the run's last good checkpoint, which it leaves in place.
"""

from __future__ import annotations


class TrainingError(ValueError):
    """A run that had begun stopped at ``step``; ``checkpoint`` is its newest complete checkpoint (None: none);
    ``resumable``: whether continuing from it is the advice."""

    def __init__(self, message: str, *, step: int, checkpoint: str | None, resumable: bool = False):
        if checkpoint is None:
            tail = "no checkpoint was written before it"
        else:
            tail = f"the last good checkpoint is {checkpoint}" + (" (continue with --resume)" if resumable else "")
        super().__init__(f"{message}; {tail}")
        self.step = step
        self.checkpoint = checkpoint


class NonFiniteError(TrainingError):
    """The loss, the gradient norm or the weights of a step are NaN or infinite."""


class TrainingFailed(TrainingError):
    """Another exception (chained as ``__cause__``) stopped the run: a full disk, a permission, a bug."""

    def __init__(self, error: BaseException, *, step: int, checkpoint: str | None):
        detail = str(error).strip().splitlines()[0] if str(error).strip() else ""
        super().__init__(f"training stopped after step {step} by {type(error).__name__}"
                         f"{': ' + detail if detail else ''}", step=step, checkpoint=checkpoint, resumable=True)


class UnreadableCheckpoint(ValueError):
    """``--resume`` found no checkpoint it can read; the message says what failed in each."""
