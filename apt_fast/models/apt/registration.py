"""Registration of the APT classes with transformers' Auto* factories."""

from __future__ import annotations


def register_auto_classes() -> None:
    """Make ``AutoConfig`` / ``AutoModel.from_pretrained(dir)`` resolve model_type "apt". Idempotent."""
    from transformers import AutoConfig, AutoModel

    from .configuration_apt import APTConfig
    from .modeling_apt import APTModel

    AutoConfig.register(APTConfig.model_type, APTConfig, exist_ok=True)
    AutoModel.register(APTConfig, APTModel, exist_ok=True)
