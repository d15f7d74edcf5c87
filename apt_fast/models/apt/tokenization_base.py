"""Shared interface of the APT tokenizers: encode / decode / batch call / save / load."""

from __future__ import annotations

import os

import torch

from ...atomic import atomic_write_json, read_json

TOKENIZER_CONFIG = "tokenizer_config.json"
# What transformers' AutoTokenizer.from_pretrained passes along besides the path: where and which revision to
# download, none of which means anything for the local directory these tokenizers load from.
HUB_LOADING_KWARGS = frozenset({"_from_auto", "_from_pipeline", "_commit_hash", "revision", "cache_dir",
                                "force_download", "local_files_only", "proxies", "token", "trust_remote_code",
                                "user_agent"})


class APTTokenizerBase:
    """Base of the offline APT tokenizers.

    Subclasses define ``encode``, ``decode``, ``vocab_size``, the special ids, ``_state()`` (what
    ``tokenizer_config.json`` stores besides the class name) and ``_save_files`` / ``_from_directory``.
    """

    pad_token_id: int
    bos_token_id: int
    eos_token_id: int
    default_max_length: int | None = None
    default_padding: str = "longest"

    @property
    def vocab_size(self) -> int:
        raise NotImplementedError

    def encode(self, text: str, max_length: int | None = None) -> list[int]:
        raise NotImplementedError

    def decode(self, ids, skip_special_tokens: bool = True) -> str:
        raise NotImplementedError

    def __call__(
        self,
        texts: str | list[str],
        max_length: int | None = None,
        padding: str | bool | None = None,
        return_tensors: str = "pt",
    ) -> dict[str, torch.Tensor]:
        """Encode a batch: ``input_ids`` [B, L] padded with ``pad_token_id`` and ``attention_mask`` [B, L]
        (1 = token, 0 = padding), as ``model.generate(**tokenizer(texts))`` and ``model(**...)`` take them.

        ``padding="longest"`` (or True) pads to the longest row, ``"max_length"`` to ``max_length``; rows
        are truncated to ``max_length`` when it is set. The result is PyTorch tensors: ``return_tensors``
        may only be "pt".
        """
        if return_tensors != "pt":
            raise ValueError(f"{type(self).__name__}: return_tensors must be 'pt' (PyTorch tensors), "
                             f"got {return_tensors!r}")
        texts = [texts] if isinstance(texts, str) else list(texts)
        max_length = max_length if max_length is not None else self.default_max_length
        padding = self.default_padding if padding is None else ("longest" if padding is True else padding)
        rows = [self.encode(text, max_length=max_length) for text in texts]
        if padding == "max_length":
            if max_length is None:
                raise ValueError("padding='max_length' needs max_length, got None")
            width = max_length
        elif padding == "longest":
            width = max((len(row) for row in rows), default=0)
        else:
            raise ValueError(f"padding must be 'longest' or 'max_length', got {padding!r}")
        input_ids = torch.full((len(rows), width), self.pad_token_id, dtype=torch.long)
        attention_mask = torch.zeros((len(rows), width), dtype=torch.long)
        for i, row in enumerate(rows):
            input_ids[i, : len(row)] = torch.tensor(row, dtype=torch.long)
            attention_mask[i, : len(row)] = 1
        return {"input_ids": input_ids, "attention_mask": attention_mask}

    def _state(self) -> dict:
        return {}

    def _save_files(self, directory: str) -> None:
        """Write the vocabulary files (the config is written by ``save_pretrained``)."""

    def save_pretrained(self, directory: str | os.PathLike) -> None:
        """Write the tokenizer files and ``tokenizer_config.json`` (each file atomically)."""
        directory = os.fspath(directory)
        os.makedirs(directory, exist_ok=True)
        self._save_files(directory)
        config = {"tokenizer_class": type(self).__name__, **self._state()}
        atomic_write_json(os.path.join(directory, TOKENIZER_CONFIG), config)

    @classmethod
    def from_pretrained(cls, directory: str | os.PathLike, *, subfolder: str = "", **hub_kwargs):
        """Load from a directory written by :meth:`save_pretrained` (also what ``AutoTokenizer`` calls).

        transformers' download options (``revision``, ``cache_dir``, ``token``, ...) are accepted and mean
        nothing for a local directory; any other keyword argument is a TypeError.
        """
        unknown = sorted(set(hub_kwargs) - HUB_LOADING_KWARGS)
        if unknown:
            raise TypeError(f"{cls.__name__}.from_pretrained() got unexpected keyword argument(s) {unknown}; "
                            f"apt_fast tokenizers take their settings from the saved directory")
        directory = os.path.join(os.fspath(directory), subfolder)
        if not os.path.isdir(directory):
            raise OSError(f"{cls.__name__}.from_pretrained: {directory} is not a directory (apt_fast tokenizers "
                          f"load from a local directory written by save_pretrained)")
        path = os.path.join(directory, TOKENIZER_CONFIG)
        config = read_json(path) if os.path.exists(path) else {}
        config.pop("tokenizer_class", None)
        return cls._from_directory(directory, config)

    @classmethod
    def _from_directory(cls, directory: str, config: dict):
        raise NotImplementedError
