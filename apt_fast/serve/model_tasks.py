"""The tasks of a worker process that only need the model: loading it (an empty prompt) and ``/api/show``'s reply."""

from __future__ import annotations

from dataclasses import dataclass

from .models import WorkerModels
from .show import show_reply
from .worker_process import WorkerJob


@dataclass(frozen=True)
class LoadRequest:
    model: str  # name:tag
    ACTION = "loading the model"  # what "... failed" names in an error

    def run(self, models: WorkerModels, job: WorkerJob) -> None:
        entry, loaded_now = models.get(self.model)
        job.emit(("done", {"load_duration": entry.load_duration_ns if loaded_now else 0}))


@dataclass(frozen=True)
class ShowRequest:
    model: str  # name:tag
    details: dict
    modified_at: str
    ACTION = "showing the model"

    def run(self, models: WorkerModels, job: WorkerJob) -> None:
        entry, _ = models.get(self.model)
        job.emit(("done", show_reply(self.model, entry.model.config, entry.tokenizer, self.details, self.modified_at)))
