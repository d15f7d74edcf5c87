"""The APT (Autopoietic Transformer) model: config, model, tokenizers and checkpoint loaders.

The names below load on first use, so importing a submodule (the tokenizers, or the config while
transformers registers it with AutoConfig) does not import transformers' modeling code.
"""

__all__ = ["APTConfig", "APTModel", "APTModelOutput", "APTPreTrainedModel", "register_auto_classes"]


def __getattr__(name: str):
    if name == "APTConfig":
        from .configuration_apt import APTConfig as value
    elif name in ("APTModel", "APTModelOutput", "APTPreTrainedModel"):
        from . import modeling_apt

        value = getattr(modeling_apt, name)
    elif name == "register_auto_classes":
        from .registration import register_auto_classes as value
    else:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    globals()[name] = value
    return value
