"""Read training data files into :class:`~apt_fast.train.records.Example` lists.

Formats, chosen by the file name:

* ``.jsonl`` / ``.json``: one JSON object per line (a ``.json`` file may also hold one JSON array of
  objects); every record format of :mod:`apt_fast.train.records` is accepted and may be mixed;
* ``.csv``: a header row, then one record per row; a ``text`` column, or the columns of another
  record format (``prompt``/``response``, ``instruction``/``input``/``output``);
* anything else (``.txt``, the guide's format): plain UTF-8 text, one sample per line, blank lines skipped.

Empty samples (an empty prompt or response) are skipped and counted.
"""

from __future__ import annotations

import csv
import io
import json
import os
from dataclasses import dataclass

from .records import Example, examples_from_record

JSON_SUFFIXES = (".jsonl", ".json")


@dataclass(frozen=True)
class DataFile:
    """The examples read from one file and what was dropped on the way."""

    path: str
    format: str
    examples: tuple[Example, ...]
    skipped_empty: int

    def describe(self) -> str:
        skipped = f", skipped {self.skipped_empty} empty" if self.skipped_empty else ""
        return f"{self.path}: {len(self.examples)} samples ({self.format}{skipped})"


def _read_text(path: str, argument: str) -> str:
    if not os.path.exists(path):
        raise FileNotFoundError(f"{argument} {path}: no such file")
    if os.path.isdir(path):
        raise ValueError(f"{argument} {path}: is a directory, expected a data file")
    with open(path, "rb") as f:
        raw = f.read()
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as err:
        line = raw[: err.start].count(b"\n") + 1
        raise ValueError(f"{argument} {path}: line {line} is not valid UTF-8 (byte 0x{raw[err.start]:02x} at offset "
                         f"{err.start}); save the file as UTF-8") from None
    if not text.strip():
        raise ValueError(f"{argument} {path}: the file is empty (expected one sample per line)")
    return text


def _json_records(text: str, path: str, argument: str):
    """(where, record) pairs of a JSON Lines file or of a JSON array."""
    if text.lstrip().startswith("["):
        try:
            records = json.loads(text)
        except json.JSONDecodeError as err:
            raise ValueError(f"{argument} {path}: not valid JSON: {err}") from None
        return [(f"{argument} {path}: item {i}", r) for i, r in enumerate(records)]
    pairs = []
    for number, line in enumerate(text.splitlines(), start=1):
        if line.strip():
            where = f"{argument} {path}: line {number}"
            try:
                pairs.append((where, json.loads(line)))
            except json.JSONDecodeError as err:
                raise ValueError(f"{where}: not valid JSON: {err.msg}") from None
    return pairs


def _csv_records(text: str, path: str, argument: str):
    reader = csv.DictReader(io.StringIO(text))
    columns = reader.fieldnames or []
    if "text" not in columns and "prompt" not in columns and "instruction" not in columns:
        raise ValueError(f"{argument} {path}: the CSV has no 'text' column (columns: {', '.join(columns)}); "
                         f"expected a 'text' column, or 'prompt'+'response', or 'instruction'+'output'")
    return [(f"{argument} {path}: row {i}", {k: v for k, v in row.items() if v is not None})
            for i, row in enumerate(reader, start=2)]


def read_data_file(path: str | os.PathLike, max_samples: int | None = None, argument: str = "--data-path") -> DataFile:
    """Read ``path`` (format from its suffix) into examples, keeping the first ``max_samples``.

    ``argument`` names the option the path came from, so every error reads e.g.
    ``--data-path train.txt: line 3 is not valid UTF-8 ...``.
    """
    if max_samples is not None and max_samples < 1:
        raise ValueError(f"max_samples must be >= 1 or None, got {max_samples}")
    path = os.fspath(path)
    text = _read_text(path, argument)
    suffix = os.path.splitext(path)[1].lower()
    if suffix in JSON_SUFFIXES or suffix == ".csv":
        records = _json_records(text, path, argument) if suffix in JSON_SUFFIXES else _csv_records(text, path, argument)
        candidates = [ex for where, record in records for ex in examples_from_record(record, where)]
        fmt = "JSON records" if suffix in JSON_SUFFIXES else "CSV"
    else:
        candidates = [Example(line.strip(), line.strip()) for line in text.splitlines() if line.strip()]
        fmt = "plain text, one sample per line"
    examples = [ex for ex in candidates if ex.source and ex.target]
    if not examples:
        raise ValueError(f"{argument} {path}: no usable samples (every record is empty)")
    skipped = len(candidates) - len(examples)
    return DataFile(path, fmt, tuple(examples[:max_samples] if max_samples else examples), skipped)
