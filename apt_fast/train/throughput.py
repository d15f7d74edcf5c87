"""A synthetic fine-tuning workload for throughput measurements: the same model, batches and settings
run through the engine with apt_fast's kernels (``fast``) or without (``--no-fast``).

One run is a fresh :class:`~apt_fast.train.trainer.Trainer` run of ``steps`` optimizer steps (forward,
token cross-entropy, backward, clipping, AdamW, schedule, and the final save, as ``apt-fast fine-tune``
does) from a copy of the initial model; it returns the losses of its steps, which must agree between
the two paths. Used by the ``training`` benchmark case and by ``apt-fast demo``; this module does not
import the benchmark harness (which reconfigures malloc for its memory measurements).
"""

from __future__ import annotations

import copy
import os
import tempfile
from dataclasses import dataclass

import torch
from torch import nn

from .batching import TokenizedData, TokenizedExample

# The APT benchmark configuration (with B=4, T=S=128): the model of the fused-attention benchmarks.
BENCHMARK_MODEL = dict(vocab_size=1000, d_model=256, num_heads=4, num_encoder_layers=2, num_decoder_layers=2,
                       d_ff=1024, dropout=0.0, use_dbc_dac=False, pad_token_id=0, bos_token_id=1, eos_token_id=2)


@dataclass(frozen=True)
class FineTuneShape:
    """The model's config fields, the batch, the sequence length and the steps of one run."""

    model: dict
    batch: int = 4
    length: int = 128  # S = T: source tokens, and BOS + target (= target + EOS) tokens
    steps: int = 3

    def describe(self) -> str:
        m = self.model
        return (f"B={self.batch} T=S={self.length} D={m['d_model']} H={m['num_heads']} "
                f"{m['num_encoder_layers']}+{m['num_decoder_layers']} layers d_ff={m['d_ff']} "
                f"V={m['vocab_size']} fp32, {self.steps} steps = {self.tokens} tokens")

    @property
    def tokens(self) -> int:
        """Source plus target tokens of one run (every sample is full length: no padding)."""
        return self.steps * self.batch * 2 * self.length


@dataclass
class FineTuneWorkload:
    shape: FineTuneShape
    model: nn.Module  # the initial weights every run starts from
    data: TokenizedData  # batch * steps samples
    workdir: tempfile.TemporaryDirectory  # where runs save (removed with the workload)


def make_workload(shape: FineTuneShape, seed: int = 0) -> FineTuneWorkload:
    """A seeded model and ``batch * steps`` samples of uniformly random tokens."""
    from ..models.apt import APTConfig, APTModel

    torch.manual_seed(seed)
    model = APTModel(APTConfig(**shape.model))
    gen = torch.Generator().manual_seed(seed + 1)
    samples, vocab = shape.steps * shape.batch, shape.model["vocab_size"]
    sources = torch.randint(3, vocab, (samples, shape.length), generator=gen)  # [N, S]
    targets = torch.randint(3, vocab, (samples, shape.length - 1), generator=gen)  # [N, T - 1]
    examples = tuple(TokenizedExample(tuple(s), tuple(t)) for s, t in zip(sources.tolist(), targets.tolist()))
    data = TokenizedData(examples, truncated=0, dropped=0, max_length=shape.length)
    return FineTuneWorkload(shape, model, data, tempfile.TemporaryDirectory(prefix="apt-fast-throughput-"))


def fresh_model(workload: FineTuneWorkload) -> nn.Module:
    """A copy of the initial model for one run (make it before starting a clock)."""
    return copy.deepcopy(workload.model)


def run_fine_tune(workload: FineTuneWorkload, model: nn.Module, fast: bool,
                  bf16: bool = False) -> torch.Tensor:  # [steps] float64
    """Fine-tune ``model`` (from :func:`fresh_model`) on the workload (``bf16``: as ``--bf16``); returns the loss of
    every step."""
    from ..models.apt.tokenization_byte import APTByteTokenizer
    from .config import TrainConfig
    from .objectives import LanguageModelObjective
    from .trainer import Trainer

    config = TrainConfig(epochs=1, batch_size=workload.shape.batch, learning_rate=1e-4, fast=fast, bf16=bf16,
                         max_length=workload.shape.length, tensorboard=False, save_steps=10**9)
    save_path = os.path.join(workload.workdir.name, ("fast" if fast else "no-fast") + ("-bf16" if bf16 else ""))
    trainer = Trainer(model, APTByteTokenizer(), LanguageModelObjective(), workload.data, None, config, save_path,
                      desc="throughput", progress_bar=False)
    return torch.tensor(trainer.train(overwrite=True).losses, dtype=torch.float64)


def check_losses(no_fast: torch.Tensor, fast: torch.Tensor) -> None:
    """The two paths' losses agree (relative 1e-4); raises AssertionError otherwise."""
    torch.testing.assert_close(fast, no_fast, rtol=1e-4, atol=1e-5,
                               msg=lambda m: f"fast-path losses disagree with --no-fast: {m}")
