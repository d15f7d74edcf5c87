"""The pruning methods by config class: each method module registers its function with ``@pruning_method(Config)``
(no shared table to edit)."""

from __future__ import annotations

from typing import Callable, Dict

METHODS: Dict[type, Callable] = {}


def pruning_method(config_class: type) -> Callable[[Callable], Callable]:
    """Register ``method(model, config, calibration, layers: ModelLayers) -> PruneReport`` for ``config_class``."""
    def register(method: Callable) -> Callable:
        METHODS[config_class] = method
        return method
    return register
