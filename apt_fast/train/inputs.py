"""Data files -> tokenized training and validation sets, with what was truncated or dropped logged."""

from __future__ import annotations

import logging
import os
import warnings

from .batching import TokenizedData, tokenize_examples
from .data import read_data_file

logger = logging.getLogger("apt_fast.train")


def load_tokenized(path: str | os.PathLike, tokenizer, *, max_length: int, max_samples: int | None = None,
                   argument: str = "--data-path") -> TokenizedData:
    """Read and tokenize one data file; logs its size and how many samples were cut to ``max_length``."""
    data_file = read_data_file(path, max_samples=max_samples, argument=argument)
    logger.info(data_file.describe())
    data = tokenize_examples(data_file.examples, tokenizer, max_length)
    if data.truncated:
        logger.warning("%s: truncated %d of %d samples longer than --max-length %d tokens", data_file.path,
                       data.truncated, len(data), max_length)
    if data.dropped:
        logger.warning("%s: dropped %d samples that encode to no tokens", data_file.path, data.dropped)
    return data


def load_train_val(train_path, val_path, tokenizer, *, max_length: int, max_samples: int | None):
    """(train, validation or None); ``max_samples`` limits the training set only."""
    train = load_tokenized(train_path, tokenizer, max_length=max_length, max_samples=max_samples)
    val = None
    if val_path is not None:
        val = load_tokenized(val_path, tokenizer, max_length=max_length, argument="--val-data-path")
    return train, val


def load_pretrained(path: str | os.PathLike, argument: str = "--model-path"):
    """``apt_fast.load(path)`` for the commands: (model, tokenizer), both required, errors naming ``argument``
    (a missing tokenizer is this error alone, without load's MissingTokenizerWarning)."""
    from ..models.apt.loading import MissingTokenizerWarning, load

    if not os.path.exists(path):
        raise FileNotFoundError(f"{argument} {path}: no such file or directory")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", MissingTokenizerWarning)
        model, tokenizer = load(path)
    if tokenizer is None:
        raise ValueError(f"{argument} {path}: the checkpoint has no tokenizer; save the model with one")
    return model, tokenizer
