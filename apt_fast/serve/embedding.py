"""``POST /api/embed``: each input's encoder states mean-pooled over its tokens and L2-normalised (as Ollama's
/api/embed returns them), run by a worker process like a generation."""

from __future__ import annotations

import time
from dataclasses import dataclass

import torch

from .errors import ServeError
from .generation import context_length
from .models import WorkerModels
from .options import SamplingSettings
from .worker_process import WorkerJob


@dataclass(frozen=True)
class EmbeddingRequest:
    model: str  # name:tag
    inputs: tuple[str, ...]
    truncate: bool  # cut inputs longer than the context (else 400)
    ACTION = "embedding"  # what "... failed" names in an error

    def run(self, models: WorkerModels, job: WorkerJob) -> None:
        run_embedding(models, self, job)


@torch.inference_mode()
def embed(model, ids: list[int]) -> list[float]:
    states = model.encode(torch.tensor([ids], dtype=torch.long), src_key_padding_mask=None)  # [1, S, D]
    pooled = states[0].float().mean(dim=0)  # [D]
    return torch.nn.functional.normalize(pooled, dim=0).tolist()


def run_embedding(models: WorkerModels, request: EmbeddingRequest, job: WorkerJob) -> None:
    start = time.perf_counter_ns()
    entry, loaded_now = models.get(request.model)
    context = context_length(entry.model, SamplingSettings())
    vectors, count = [], 0
    for i, text in enumerate(request.inputs):
        ids = list(entry.tokenizer.encode(text)) or [int(entry.model.config.pad_token_id or 0)]
        if len(ids) > context and not request.truncate:
            raise ServeError(400, f"input[{i}] is {len(ids)} tokens, longer than the model's context of "
                                  f"{context} tokens (truncate is false)")
        ids = ids[:context]
        count += len(ids)
        vectors.append(embed(entry.model, ids))
        if job.cancelled.is_set():
            return
    job.emit(("done", {"embeddings": vectors, "total_duration": time.perf_counter_ns() - start,
                       "load_duration": entry.load_duration_ns if loaded_now else 0, "prompt_eval_count": count}))
