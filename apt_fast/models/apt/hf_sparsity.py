"""transformers' ``from_pretrained`` of a directory sparsified by apt_fast: refused with one message.

transformers would build the dense model, report every sparse tensor (``<layer>.values``, ``<layer>.bitmap``, ...)
as unexpected and every sparse layer's weight as missing, and initialise those at random; APTModel.from_pretrained
calls :func:`refuse_for_transformers` first instead.
"""

from __future__ import annotations

import json
import os

from .errors import CheckpointError

SPARSITY_CONFIG = "sparsity_config"


def refuse_for_transformers(path, kwargs: dict) -> None:
    """transformers' from_pretrained of a local directory (or with a config) that apt_fast.sparsify wrote: a
    CheckpointError pointing to apt_fast.load."""
    entry = None
    config = kwargs.get("config")
    if config is not None and not isinstance(config, (str, os.PathLike)):
        entry = getattr(config, SPARSITY_CONFIG, None)
    elif isinstance(path, (str, os.PathLike)):
        directory = os.path.join(os.fspath(path), kwargs["subfolder"]) if kwargs.get("subfolder") else os.fspath(path)
        config_path = os.path.join(directory, "config.json")
        if os.path.isfile(config_path):
            try:
                with open(config_path, encoding="utf-8") as f:
                    entry = json.load(f).get(SPARSITY_CONFIG)
            except (OSError, ValueError, AttributeError):
                return  # transformers reports an unreadable config itself
    if not entry:
        return
    layers = entry.get("layers") or {} if isinstance(entry, dict) else {}
    formats = sorted({options.get("format", "?") for options in layers.values() if isinstance(options, dict)})
    raise CheckpointError(f"this model was sparsified by apt_fast ({len(layers)} sparse layers: "
                          f"{', '.join(formats) or 'unknown formats'}); transformers' from_pretrained cannot build "
                          f"its sparse layers: load it with `model, tokenizer = apt_fast.load(path)`")
