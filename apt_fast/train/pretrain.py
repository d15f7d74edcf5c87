"""Training an APT model from scratch (``apt-fast train``) with the offline byte-level tokenizer."""

from __future__ import annotations

import json
import logging
import os
from typing import Callable, Sequence

import torch

from ..models.apt import APTConfig, APTModel
from ..models.apt.tokenization_byte import APTByteTokenizer
from .config import TRAIN_DEFAULTS, TrainConfig
from .distributed import Runtime, init_runtime
from .finetune import run_language_model_training

logger = logging.getLogger("apt_fast.train")
_SPECIAL = ("pad_token_id", "bos_token_id", "eos_token_id")


def read_model_config(source: str | os.PathLike | dict | APTConfig, argument: str = "--config") -> dict:
    """The model fields from a JSON file, a dict or an APTConfig."""
    if isinstance(source, APTConfig):
        return source.to_dict()
    if isinstance(source, dict):
        return dict(source)
    path = os.fspath(source)
    if not os.path.exists(path):
        raise FileNotFoundError(f"{argument} {path}: no such file")
    try:
        with open(path, encoding="utf-8") as f:
            fields = json.load(f)
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise ValueError(f"{argument} {path}: not a valid JSON file: {err}") from None
    if not isinstance(fields, dict):
        raise ValueError(f"{argument} {path}: expected a JSON object of APTConfig fields, got {type(fields).__name__}")
    return fields


def config_for_tokenizer(fields: dict, tokenizer, argument: str = "--config") -> APTConfig:
    """APTConfig from ``fields`` with the tokenizer's vocabulary size and special ids filled in.

    An explicit vocab_size smaller than the tokenizer's, or special ids that differ from its, are errors.
    """
    fields = {k: v for k, v in fields.items() if k not in ("model_type", "transformers_version", "architectures")}
    vocab = fields.setdefault("vocab_size", tokenizer.vocab_size)
    if not isinstance(vocab, int) or vocab < tokenizer.vocab_size:
        raise ValueError(f"{argument}: vocab_size must be an int >= {tokenizer.vocab_size} (the tokenizer's), "
                         f"got {vocab!r}")
    for name in _SPECIAL:
        expected = getattr(tokenizer, name)
        if fields.setdefault(name, expected) != expected:
            raise ValueError(f"{argument}: {name} must be {expected} (the byte tokenizer's), got {fields[name]!r}")
    try:
        return APTConfig(**fields)
    except (TypeError, ValueError) as err:
        raise ValueError(f"{argument}: invalid model config: {err}") from None


def new_model(config: APTConfig, seed: int) -> APTModel:
    torch.manual_seed(seed)
    return APTModel(config)


def train_model(
    model_config: str | os.PathLike | dict | APTConfig,
    train_data_path: str | os.PathLike,
    val_data_path: str | os.PathLike | None = None,
    save_path: str | os.PathLike = "apt_model",
    *,
    max_samples: int | None = None,
    resume: str | None = None,
    overwrite: bool = False,
    callbacks: Sequence[Callable] = (),
    runtime: Runtime | None = None,
    config: TrainConfig | None = None,
    progress_bar: bool | None = None,
    **settings,
):
    """Build a new APT model from ``model_config`` (JSON path, dict or APTConfig) and train it with the
    byte-level tokenizer; ``settings`` are TrainConfig fields (default learning rate 3e-4).
    ``progress_bar``: the tqdm bar on stderr; None (the default) shows it when stderr is a terminal.

    Returns ``(model, tokenizer, model_config)``; the model is saved to ``save_path``.
    """
    config = TrainConfig.from_overrides(config or TRAIN_DEFAULTS, **settings)
    tokenizer = APTByteTokenizer()
    model_cfg = config_for_tokenizer(read_model_config(model_config), tokenizer)
    model = new_model(model_cfg, config.seed)
    logger.info("new APT model: %s parameters", f"{sum(p.numel() for p in model.parameters()):,}")
    run_language_model_training(
        model, tokenizer, train_data_path=train_data_path, val_data_path=val_data_path, save_path=save_path,
        config=config, max_samples=max_samples, resume=resume, overwrite=overwrite, callbacks=callbacks,
        runtime=runtime or init_runtime(), desc="train", run_info={"command": "train"}, progress_bar=progress_bar)
    return model, tokenizer, model.config
