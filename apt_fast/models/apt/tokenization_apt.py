"""Tokenizer loading for APT checkpoints: apt_fast's own tokenizers and upstream's saved formats."""

from __future__ import annotations

import os

from ...atomic import read_json
from .tokenization_base import TOKENIZER_CONFIG, APTTokenizerBase
from .tokenization_byte import APTByteTokenizer
from .tokenization_char import VOCAB_FILE, ChineseCharTokenizer, HLBDCharTokenizer

TOKENIZER_CLASSES = {cls.__name__: cls for cls in (APTByteTokenizer, ChineseCharTokenizer, HLBDCharTokenizer)}


def load_tokenizer(directory: str | os.PathLike):
    """Load the tokenizer saved in ``directory``.

    * ``tokenizer_config.json`` naming an apt_fast tokenizer class -> that class;
    * ``vocab.json`` + ``merges.txt`` (upstream's GPT-2 tokenizer) -> ``transformers.GPT2Tokenizer``
      from the local files, with pad = eos when the pad token is missing (as upstream's load_model);
    * ``vocab.json`` alone (upstream's ChineseTokenizer) -> :class:`ChineseCharTokenizer`.
    """
    directory = os.fspath(directory)
    config_path = os.path.join(directory, TOKENIZER_CONFIG)
    config = read_json(config_path) if os.path.exists(config_path) else {}
    name = config.get("tokenizer_class")
    if name in TOKENIZER_CLASSES:
        return TOKENIZER_CLASSES[name].from_pretrained(directory)
    has_vocab = os.path.exists(os.path.join(directory, VOCAB_FILE))
    if has_vocab and os.path.exists(os.path.join(directory, "merges.txt")):
        from transformers import GPT2Tokenizer

        tokenizer = GPT2Tokenizer.from_pretrained(directory)
        if tokenizer.pad_token is None:
            tokenizer.pad_token = tokenizer.eos_token
        return tokenizer
    if has_vocab:
        return ChineseCharTokenizer.from_pretrained(directory)
    raise ValueError(
        f"no tokenizer found in {directory}: expected tokenizer_config.json naming one of "
        f"{sorted(TOKENIZER_CLASSES)}, or upstream's vocab.json (+ merges.txt for GPT-2)"
    )


__all__ = ["APTTokenizerBase", "APTByteTokenizer", "ChineseCharTokenizer", "HLBDCharTokenizer", "load_tokenizer"]
