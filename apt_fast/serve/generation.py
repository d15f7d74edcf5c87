"""One generation request as a worker process runs it: load the model (once per worker), encode the prompt, decode
token by token and emit ``("ready",)``, then ``("text", piece)`` events, then ``("done", stats)``; a failure is raised
(the worker sends it as ``("error", status, message)``). Durations in the stats are nanoseconds, as Ollama reports
them."""

from __future__ import annotations

import random
import time
from dataclasses import dataclass

import torch

from .decoding import TextStream, decode_steps
from .errors import ServeError
from .models import WorkerModels
from .options import SamplingSettings
from .prompts import chat_prompt
from .worker_process import WorkerJob


@dataclass(frozen=True)
class GenerationRequest:
    model: str  # name:tag
    prompt: str  # the encoder input, already laid out; unused when ``messages`` is given
    settings: SamplingSettings
    messages: tuple | None = None  # a chat, laid out with the model's tokenizer (prompts.chat_prompt)
    ACTION = "generation"  # what "... failed" names in an error

    def run(self, models: WorkerModels, job: WorkerJob) -> None:
        run_generation(models, self, job)


def context_length(model, settings: SamplingSettings) -> int:
    """The model's context (max_seq_len), or ``num_ctx`` when that is smaller."""
    limit = int(model.config.max_seq_len)
    return min(limit, settings.num_ctx) if settings.num_ctx and settings.num_ctx > 0 else limit


def run_generation(models: WorkerModels, request: GenerationRequest, job: WorkerJob) -> None:
    start = time.perf_counter_ns()
    entry, loaded_now = models.get(request.model)
    _generate(entry, loaded_now, request, job, start)


def _generate(entry, loaded_now: bool, request: GenerationRequest, job: WorkerJob, start: int) -> None:
    settings = request.settings
    prompt = request.prompt if request.messages is None else chat_prompt(request.messages, entry.tokenizer)
    ids = list(entry.tokenizer.encode(prompt)) or [int(entry.model.config.pad_token_id or 0)]
    context = context_length(entry.model, settings)
    if len(ids) > context:
        raise ServeError(400, f"the prompt is {len(ids)} tokens, longer than the model's context of {context} "
                              f"tokens")
    budget = context - 1  # the decoder's positions, BOS included
    max_new = budget if settings.num_predict < 0 else min(settings.num_predict, budget)
    generator = torch.Generator().manual_seed(settings.seed if settings.seed is not None
                                              else random.SystemRandom().randrange(2**63))
    steps = decode_steps(entry.model, torch.tensor([ids], dtype=torch.long), settings, max_new, generator)
    prompt_start = time.perf_counter_ns()
    next(steps)  # the encoder
    eval_start = time.perf_counter_ns()
    job.emit(("ready",))
    text = TextStream(entry.tokenizer, settings.stop)
    count, reason = 0, "length"
    for token in steps:
        if job.cancelled.is_set():
            return
        count += 1
        piece = text.push(token)
        if piece:
            job.emit(("text", piece))
        if text.stopped:
            reason = "stop"
            break
    else:
        reason = "length" if count >= max_new else "stop"
    tail = text.finish()
    if tail:
        job.emit(("text", tail))
    end = time.perf_counter_ns()
    job.emit(("done", {"done_reason": reason, "total_duration": end - start,
                       "load_duration": entry.load_duration_ns if loaded_now else 0,
                       "prompt_eval_count": len(ids), "prompt_eval_duration": eval_start - prompt_start,
                       "eval_count": count, "eval_duration": end - eval_start}))
