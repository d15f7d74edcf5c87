"""The APT (Autopoietic Transformer) model: config, model, tokenizers and checkpoint loaders."""

from .configuration_apt import APTConfig
from .modeling_apt import APTModel, APTModelOutput, APTPreTrainedModel
from .registration import register_auto_classes

register_auto_classes()

__all__ = ["APTConfig", "APTModel", "APTModelOutput", "APTPreTrainedModel", "register_auto_classes"]
