"""Tokenizer metadata in GGUF: llama.cpp's ``tokenizer.*`` keys, plus the tokenizer's own files.

For any GGUF reader: ``tokenizer.ggml.model`` ("gpt2" for a byte-level BPE tokenizer with merges,
"apt-byte" for apt_fast's byte tokenizer, "apt-char" for the character tokenizers), ``tokens`` (one
string per id; ids no token maps to are "[UNUSED_<id>]"), ``token_type`` (1 normal, 3 control, 5 unused,
6 byte), ``merges`` (gpt2 only), the special ids and ``tokenizer.chat_template`` when there is one.

For an exact rebuild by apt_fast: ``apt.tokenizer.file_names`` / ``apt.tokenizer.file_contents``, the
text files ``tokenizer.save_pretrained`` writes (apt_fast.gguf.tokenizer_files, which also reads them back).
"""

from __future__ import annotations

import os
import tempfile

from ..gguf.tokenizer_files import FILE_CONTENTS, FILE_NAMES

NORMAL, CONTROL, UNUSED, BYTE = 1, 3, 5, 6
_SPECIAL_IDS = {"bos": "bos_token_id", "eos": "eos_token_id", "padding": "pad_token_id", "unknown": "unk_token_id"}


def _token_table(tokenizer) -> tuple[str, dict[int, str], set[int]]:
    """(tokenizer model name, id -> token string, ids of byte tokens)."""
    from ..models.apt.tokenization_byte import APTByteTokenizer
    from ..models.apt.tokenization_char import ChineseCharTokenizer, HLBDCharTokenizer

    if isinstance(tokenizer, APTByteTokenizer):
        table = {tokenizer.pad_token_id: "<pad>", tokenizer.bos_token_id: "<s>", tokenizer.eos_token_id: "</s>"}
        table.update({b + tokenizer.offset: f"<0x{b:02X}>" for b in range(256)})
        return "apt-byte", table, {b + tokenizer.offset for b in range(256)}
    if isinstance(tokenizer, ChineseCharTokenizer):
        return "apt-char", dict(tokenizer.decoder), set()
    if isinstance(tokenizer, HLBDCharTokenizer):
        return "apt-char", dict(tokenizer.id_to_char), set()
    if hasattr(tokenizer, "convert_ids_to_tokens"):  # a transformers tokenizer
        return "gpt2", {i: tokenizer.convert_ids_to_tokens(i) for i in range(len(tokenizer))}, set()
    raise ValueError(f"cannot export a tokenizer of type {type(tokenizer).__name__} to GGUF")


def vocabulary(tokenizer) -> list[str]:
    """One token string per id, in id order (what ``tokenizer.ggml.tokens`` holds)."""
    _, table, _ = _token_table(tokenizer)
    size = max(max(table, default=-1) + 1, tokenizer.vocab_size)
    return [table.get(i, f"[UNUSED_{i}]") for i in range(size)]


def special_ids(tokenizer) -> dict[str, int]:
    """GGUF's special-token names (bos, eos, padding, unknown) -> ids the tokenizer defines."""
    ids = {name: getattr(tokenizer, attribute, None) for name, attribute in _SPECIAL_IDS.items()}
    return {name: int(i) for name, i in ids.items() if i is not None}


def _saved_files(tokenizer) -> tuple[list[str], list[str]]:
    with tempfile.TemporaryDirectory() as directory:
        tokenizer.save_pretrained(directory)
        names = sorted(name for name in os.listdir(directory) if os.path.isfile(os.path.join(directory, name)))
        contents = []
        for name in names:
            with open(os.path.join(directory, name), encoding="utf-8") as f:
                contents.append(f.read())
    return names, contents


def add_tokenizer(writer, tokenizer) -> None:
    """Write ``tokenizer``'s metadata with ``writer`` (a gguf.GGUFWriter)."""
    model, table, byte_ids = _token_table(tokenizer)
    tokens = vocabulary(tokenizer)
    specials = special_ids(tokenizer)
    control = set(specials.values())
    types = [BYTE if i in byte_ids else CONTROL if i in control else NORMAL if i in table else UNUSED
             for i in range(len(tokens))]
    writer.add_tokenizer_model(model)
    writer.add_token_list(tokens)
    writer.add_token_types(types)
    if model == "gpt2" and hasattr(tokenizer, "bpe_ranks"):
        merges = sorted(tokenizer.bpe_ranks.items(), key=lambda item: item[1])
        writer.add_token_merges([" ".join(pair) for pair, _ in merges])
    for name, token_id in specials.items():
        writer.add_uint32(f"tokenizer.ggml.{name}_token_id", token_id)
    chat_template = getattr(tokenizer, "chat_template", None)
    if isinstance(chat_template, str) and chat_template:
        writer.add_chat_template(chat_template)
    names, contents = _saved_files(tokenizer)
    writer.add_array(FILE_NAMES, names)
    writer.add_array(FILE_CONTENTS, contents)

