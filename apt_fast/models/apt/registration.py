"""Registration of the APT classes with transformers' Auto factories (each step idempotent).

``import apt_fast`` runs these as transformers loads its Auto modules (apt_fast.models.transformers_hook);
:func:`register_auto_classes` runs them all at once.
"""

from __future__ import annotations


def register_config() -> None:
    """``AutoConfig.from_pretrained(dir)`` resolves model_type "apt" to APTConfig."""
    from transformers import AutoConfig

    from .configuration_apt import APTConfig

    AutoConfig.register(APTConfig.model_type, APTConfig, exist_ok=True)


def register_models() -> None:
    """``AutoModel`` and ``AutoModelForSeq2SeqLM`` build APTModel for an APTConfig."""
    from transformers import AutoModel, AutoModelForSeq2SeqLM

    from .configuration_apt import APTConfig
    from .modeling_apt import APTModel

    for auto_class in (AutoModel, AutoModelForSeq2SeqLM):
        auto_class.register(APTConfig, APTModel, exist_ok=True)


def register_tokenizers() -> None:
    """``AutoTokenizer.from_pretrained(dir)`` loads the apt_fast tokenizer that ``tokenizer_config.json``
    names; APTByteTokenizer is the one for an APTConfig whose directory names none."""
    from transformers import AutoTokenizer

    from .configuration_apt import APTConfig
    from .tokenization_byte import APTByteTokenizer
    from .tokenization_char import ChineseCharTokenizer, HLBDCharTokenizer

    for tokenizer_class in (ChineseCharTokenizer, HLBDCharTokenizer, APTByteTokenizer):  # the last one is the default
        AutoTokenizer.register(APTConfig, tokenizer_class=tokenizer_class, exist_ok=True)


def register_quantization_refusal() -> None:
    """``from_pretrained`` of a directory quantized by apt_fast fails with one message pointing to apt_fast.load
    (quant_method "apt_fast" has a config class that refuses to be read: .hf_quantization)."""
    from transformers.quantizers.auto import AUTO_QUANTIZATION_CONFIG_MAPPING, register_quantization_config

    from .hf_quantization import QUANT_METHOD, AptFastQuantization

    if QUANT_METHOD not in AUTO_QUANTIZATION_CONFIG_MAPPING:
        register_quantization_config(QUANT_METHOD)(AptFastQuantization)


def register_auto_classes() -> None:
    """All of the above."""
    register_config()
    register_models()
    register_tokenizers()
    register_quantization_refusal()
