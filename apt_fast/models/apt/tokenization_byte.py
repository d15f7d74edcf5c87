"""APTByteTokenizer: the default offline tokenizer (UTF-8 bytes, no vocabulary file, no download)."""

from __future__ import annotations

from .tokenization_base import APTTokenizerBase


class APTByteTokenizer(APTTokenizerBase):
    """Byte-level tokenizer: PAD 0, BOS 1, EOS 2 (upstream APTConfig's ids), byte b -> id b + 3.

    ``vocab_size`` is 259. Every string encodes losslessly; ``decode`` replaces invalid UTF-8
    sequences with U+FFFD. ``encode`` adds no BOS/EOS unless ``add_special_tokens`` is set
    (``generate`` starts the decoder with BOS itself).
    """

    pad_token_id = 0
    bos_token_id = 1
    eos_token_id = 2
    offset = 3

    def __init__(self, add_special_tokens: bool = False):
        self.add_special_tokens = add_special_tokens

    @property
    def vocab_size(self) -> int:
        return 256 + self.offset

    def encode(self, text: str, max_length: int | None = None) -> list[int]:
        ids = [b + self.offset for b in text.encode("utf-8")]
        if self.add_special_tokens:
            ids = [self.bos_token_id, *ids, self.eos_token_id]
        return ids[:max_length] if max_length is not None else ids

    def decode(self, ids, skip_special_tokens: bool = True) -> str:
        data = bytes(int(i) - self.offset for i in ids if int(i) >= self.offset)
        return data.decode("utf-8", errors="replace")

    def _state(self) -> dict:
        return {"add_special_tokens": self.add_special_tokens}

    @classmethod
    def _from_directory(cls, directory: str, config: dict):
        return cls(add_special_tokens=bool(config.get("add_special_tokens", False)))
