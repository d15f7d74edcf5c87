"""transformers' ``from_pretrained`` of a directory quantized by apt_fast: refused with one message.

transformers reads config.json's ``quantization_config`` as the config of one of its own quantizers; for a
``quant_method`` it does not know it warns, skips it and builds the float model, reporting every ``qweight`` as
unexpected and every quantized weight as missing. Registered as the config class of quant_method "apt_fast"
(apt_fast.models.apt.registration), :class:`AptFastQuantization` stops that at its first step.
"""

from __future__ import annotations

from transformers.utils.quantization_config import QuantizationConfigMixin

from .errors import CheckpointError

QUANT_METHOD = "apt_fast"


class AptFastQuantization(QuantizationConfigMixin):
    """Never built: reading it from a config.json raises a CheckpointError that points to apt_fast.load."""

    @classmethod
    def from_dict(cls, config_dict, return_unused_kwargs=False, **kwargs):
        layers = len(config_dict.get("modules") or [])
        raise CheckpointError(f"this model was quantized by apt_fast ({config_dict.get('scheme')}, {layers} layers); "
                              f"transformers' from_pretrained cannot build its quantized layers: load it with "
                              f"`model, tokenizer = apt_fast.load(path)`")
