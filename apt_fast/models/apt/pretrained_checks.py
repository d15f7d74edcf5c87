"""``APTModel.from_pretrained`` (also what AutoModel calls) refuses weights that do not fit the config.

transformers re-initialises at random what the checkpoint lacks and only logs it, so a config.json saying
12 layers over weights of 1 gave a half-random model. Before loading, a local directory's config (with the
keyword overrides) is compared with its safetensors header, field by field; after loading, any key that
transformers reports missing, unexpected or mismatched is an error too.
"""

from __future__ import annotations

import json
import os

from .errors import CheckpointError
from .shape_check import contradictions

_WEIGHTS, _INDEX = "model.safetensors", "model.safetensors.index.json"


def _checkpoint_shapes(directory: str) -> dict[str, tuple[int, ...]] | None:
    """{key: shape} from the safetensors header(s) in ``directory``; None when it has none."""
    from safetensors import safe_open

    if os.path.exists(os.path.join(directory, _WEIGHTS)):
        files = [_WEIGHTS]
    elif os.path.exists(os.path.join(directory, _INDEX)):
        with open(os.path.join(directory, _INDEX), encoding="utf-8") as f:
            files = sorted(set(json.load(f)["weight_map"].values()))
    else:
        return None
    shapes = {}
    for name in files:
        with safe_open(os.path.join(directory, name), "pt") as f:
            shapes.update({key: tuple(f.get_slice(key).get_shape()) for key in f.keys()})
    return shapes


def check_config_matches_weights(path, kwargs: dict, config_fields) -> None:
    """For a local directory: its config.json (or ``kwargs["config"]``), updated by the keyword arguments
    that name config fields, must not contradict the weights' shapes."""
    if not isinstance(path, (str, os.PathLike)):
        return
    directory = os.path.join(os.fspath(path), kwargs["subfolder"]) if kwargs.get("subfolder") else os.fspath(path)
    if not os.path.isdir(directory):
        return
    shapes = _checkpoint_shapes(directory)
    config = kwargs.get("config")
    if shapes is None or (config is None and not os.path.exists(os.path.join(directory, "config.json"))):
        return
    if config is None:
        with open(os.path.join(directory, "config.json"), encoding="utf-8") as f:
            saved = json.load(f)
    elif hasattr(config, "to_dict"):
        saved = config.to_dict()
    else:
        return
    saved.update({key: value for key, value in kwargs.items() if key in config_fields})
    found = contradictions(saved, shapes)
    if found:
        raise CheckpointError(f"{directory}: the config contradicts the weights: {'; '.join(found)}")


def check_loading_info(path, info: dict) -> None:
    """Raise when transformers reports keys missing (and re-initialised), unexpected or of the wrong shape."""
    problems = [f"{what} {sorted(map(str, info.get(key) or ()))}" for key, what in
                (("missing_keys", "missing (would be random) keys"), ("unexpected_keys", "unexpected keys"),
                 ("mismatched_keys", "mismatched keys"))
                if info.get(key)]
    if problems:
        raise CheckpointError(f"{os.fspath(path)}: the weights do not match the config: {', '.join(problems)}")
