"""Upstream's character tokenizers, with their ids and quirks preserved (APT_SPEC.md §5.1-5.2)."""

from __future__ import annotations

import os

from ...atomic import atomic_write_json, read_json
from .tokenization_base import APTTokenizerBase

VOCAB_FILE = "vocab.json"


class ChineseCharTokenizer(APTTokenizerBase):
    """Upstream's ``ChineseTokenizer`` in char mode, as saved by ``save_pretrained`` (vocab.json only).

    Quirks kept so old checkpoints decode the same:

    * ``<|pad|>`` = 0; ``<|endoftext|>`` is BOS and EOS with id 2, **the same id as the space**; id 1
      is never used; ASCII 32-126 take ids 2-96;
    * ``encode`` looks up each character, **silently drops unknown characters** (no UNK), adds no
      BOS/EOS and truncates at ``max_length``;
    * ``decode`` skips the special tokens, and since id 2 decodes to ``<|endoftext|>``, **every space
      disappears** (and ``generate`` with eos 2 stops on a space);
    * vocab.json is the token->id map in insertion order, including the duplicate id 2; the id->token
      map takes the last entry for a duplicated id.
    """

    pad_token = "<|pad|>"
    eos_token = bos_token = "<|endoftext|>"

    def __init__(self, encoder: dict[str, int]):
        self.encoder = dict(encoder)
        self.decoder = {i: token for token, i in self.encoder.items()}
        self.pad_token_id = self.encoder[self.pad_token]
        self.bos_token_id = self.eos_token_id = self.encoder[self.eos_token]

    @classmethod
    def fixed_range(cls) -> ChineseCharTokenizer:
        """The vocabulary upstream's tokenizer factory resolves to: ASCII 32-126, then U+4E00..U+9FFE.

        Full-width punctuation such as '，' and '。' is therefore not in it (dropped by ``encode``).
        """
        encoder = {cls.pad_token: 0}
        for code in range(32, 127):
            encoder[chr(code)] = code - 30  # ' ' = 2 ... '~' = 96
        for offset, code in enumerate(range(0x4E00, 0x9FFF)):
            encoder[chr(code)] = 97 + offset
        encoder[cls.eos_token] = 2  # re-set last by upstream's get_tokenizer, hence at the end
        return cls(encoder)

    @property
    def vocab_size(self) -> int:
        return max(self.encoder.values()) + 1

    def encode(self, text: str, max_length: int | None = None) -> list[int]:
        ids = [self.encoder[ch] for ch in text if ch in self.encoder]
        return ids[:max_length] if max_length is not None else ids

    def decode(self, ids, skip_special_tokens: bool = True) -> str:
        special = {self.pad_token, self.eos_token}
        tokens = (self.decoder.get(int(i)) for i in ids)
        return "".join(t for t in tokens if t is not None and not (skip_special_tokens and t in special))

    def _save_files(self, directory: str) -> None:
        atomic_write_json(os.path.join(directory, VOCAB_FILE), self.encoder)

    @classmethod
    def _from_directory(cls, directory: str, config: dict):
        return cls(read_json(os.path.join(directory, VOCAB_FILE)))


class HLBDCharTokenizer(APTTokenizerBase):
    """The char tokenizer stored inside upstream's single-file HLBD checkpoints.

    PAD 0, UNK 1, BOS 2, EOS 3 (the playground adds [EMOJI] 4 ... [KR] 9). ``encode`` returns
    [BOS] + chars + [EOS] with unknown characters mapped to UNK; a batch call pads to
    ``max_length`` 64 by default. ``decode`` skips PAD/BOS/EOS when ``skip_special_tokens``.
    """

    pad_token_id, unk_token_id, bos_token_id, eos_token_id = 0, 1, 2, 3
    default_max_length = 64
    default_padding = "max_length"

    def __init__(self, char_to_id: dict[str, int], id_to_char: dict[int, str] | None = None,
                 next_id: int | None = None):
        self.char_to_id = dict(char_to_id)
        self.id_to_char = {int(i): c for i, c in (id_to_char or {i: c for c, i in self.char_to_id.items()}).items()}
        self.next_id = next_id if next_id is not None else max(self.id_to_char, default=-1) + 1

    @classmethod
    def with_special_tokens(cls) -> HLBDCharTokenizer:
        """An empty vocabulary holding only [PAD], [UNK], [BOS], [EOS]."""
        return cls({"[PAD]": 0, "[UNK]": 1, "[BOS]": 2, "[EOS]": 3})

    @property
    def vocab_size(self) -> int:
        return self.next_id

    def encode(self, text: str, max_length: int | None = None) -> list[int]:
        ids = [self.bos_token_id, *(self.char_to_id.get(ch, self.unk_token_id) for ch in text), self.eos_token_id]
        return ids[:max_length] if max_length is not None else ids

    def decode(self, ids, skip_special_tokens: bool = True) -> str:
        skipped = {self.pad_token_id, self.bos_token_id, self.eos_token_id} if skip_special_tokens else set()
        return "".join(self.id_to_char.get(int(i), "") for i in ids if int(i) not in skipped)

    def checkpoint_fields(self) -> dict:
        """The ``tokenizer_*`` entries of an HLBD checkpoint."""
        return {
            "tokenizer_char_to_id": self.char_to_id,
            "tokenizer_id_to_char": self.id_to_char,
            "tokenizer_next_id": self.next_id,
            "tokenizer_vocab_size": self.vocab_size,
        }

    def _state(self) -> dict:
        return {"next_id": self.next_id}

    def _save_files(self, directory: str) -> None:
        atomic_write_json(os.path.join(directory, VOCAB_FILE), self.char_to_id)

    @classmethod
    def _from_directory(cls, directory: str, config: dict):
        return cls(read_json(os.path.join(directory, VOCAB_FILE)), next_id=config.get("next_id"))
