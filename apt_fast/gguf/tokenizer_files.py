"""The tokenizer's own files in a GGUF file: the text files ``tokenizer.save_pretrained`` writes, stored as
two string arrays, ``apt.tokenizer.file_names`` and ``apt.tokenizer.file_contents``, so that apt_fast
rebuilds the tokenizer exactly (a character vocabulary may map two strings to one id, which GGUF's token
list cannot express)."""

from __future__ import annotations

import os

from .reader import GGUFError

FILE_NAMES, FILE_CONTENTS = "apt.tokenizer.file_names", "apt.tokenizer.file_contents"


def tokenizer_files(metadata: dict, source: str) -> dict[str, str] | None:
    """File name -> text of the tokenizer files in a GGUF file's metadata, or None when it stores none;
    GGUFError naming ``source`` when the arrays are malformed or a name is not a plain file name."""
    names, contents = metadata.get(FILE_NAMES), metadata.get(FILE_CONTENTS)
    if names is None and contents is None:
        return None
    if not (isinstance(names, list) and isinstance(contents, list) and len(names) == len(contents)
            and all(isinstance(x, str) for x in names + contents)):
        raise GGUFError(f"{source}: {FILE_NAMES} and {FILE_CONTENTS} must be string arrays of equal length")
    for name in names:
        if os.path.basename(name) != name or name in ("", ".", ".."):
            raise GGUFError(f"{source}: {FILE_NAMES} holds an invalid file name {name!r}")
    return dict(zip(names, contents))
