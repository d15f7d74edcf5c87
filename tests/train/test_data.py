"""Data files: every format, how source and target are built, bad input, truncation and batching."""

from __future__ import annotations

import json
import logging

import pytest
import torch

from apt_fast.models.apt.tokenization_byte import APTByteTokenizer
from apt_fast.train import IGNORE_INDEX, Example, collate, read_data_file, render_prompt, tokenize_examples
from apt_fast.train.batching import epoch_batches
from apt_fast.train.inputs import load_tokenized


def _write(tmp_path, name, text):
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return str(path)


def test_plain_text_is_language_model_style(tmp_path):
    path = _write(tmp_path, "d.txt", "人工智能是计算机科学的一个分支。\n\n  deep learning  \n")
    data = read_data_file(path)
    assert data.examples == (Example("人工智能是计算机科学的一个分支。", "人工智能是计算机科学的一个分支。"),
                             Example("deep learning", "deep learning"))


def test_jsonl_formats_mixed(tmp_path):
    records = [
        {"text": "plain"},
        {"prompt": "p", "response": "r"},
        {"prompt": "p2", "completion": "c2"},
        {"instruction": "Translate", "input": "hello", "output": "bonjour"},
        {"instruction": "Say hi", "input": "", "output": "hi"},
        {"conversations": [{"from": "system", "value": "be brief"}, {"from": "human", "value": "q1"},
                           {"from": "gpt", "value": "a1"}, {"from": "human", "value": "q2"},
                           {"from": "gpt", "value": "a2"}]},
        {"messages": [{"role": "user", "content": "hey"}, {"role": "assistant", "content": "yo"}]},
    ]
    path = _write(tmp_path, "d.jsonl", "\n".join(json.dumps(r) for r in records) + "\n")
    assert read_data_file(path).examples == (
        Example("plain", "plain"),
        Example("p", "r"),
        Example("p2", "c2"),
        Example("Translate\n\nhello", "bonjour"),
        Example("Say hi", "hi"),
        Example("system: be brief\nq1", "a1"),
        Example("system: be brief\nuser: q1\nassistant: a1\nq2", "a2"),
        Example("hey", "yo"),
    )


def test_render_prompt_matches_chat_layout():
    assert render_prompt([], "hi") == "hi"
    assert render_prompt([("user", "a"), ("assistant", "b")], "c") == "user: a\nassistant: b\nc"


def test_json_array_and_max_samples(tmp_path):
    path = _write(tmp_path, "d.json", json.dumps([{"text": str(i)} for i in range(5)]))
    assert [e.source for e in read_data_file(path, max_samples=3).examples] == ["0", "1", "2"]


def test_csv_text_and_pair_columns(tmp_path):
    assert read_data_file(_write(tmp_path, "a.csv", 'id,text\n1,"hello, world"\n2,bye\n')).examples == (
        Example("hello, world", "hello, world"), Example("bye", "bye"))
    assert read_data_file(_write(tmp_path, "b.csv", "prompt,response\nab,ba\n")).examples == (Example("ab", "ba"),)


def test_empty_samples_are_skipped_and_counted(tmp_path):
    path = _write(tmp_path, "d.jsonl", '{"prompt": "a", "response": ""}\n{"text": "ok"}\n')
    data = read_data_file(path)
    assert data.examples == (Example("ok", "ok"),) and data.skipped_empty == 1


@pytest.mark.parametrize("name, content, message", [
    ("empty.txt", b"", "--data-path {p}: the file is empty (expected one sample per line)"),
    ("blank.txt", b"\n  \n", "--data-path {p}: the file is empty (expected one sample per line)"),
    ("latin1.txt", b"ok\ncaf\xe9\n", "--data-path {p}: line 2 is not valid UTF-8 (byte 0xe9 at offset 6); "
                                    "save the file as UTF-8"),
    ("bad.jsonl", b'{"text": "a"}\n{"text": \n', "--data-path {p}: line 2: not valid JSON: Expecting value"),
    ("odd.jsonl", b'{"question": "a"}\n', "--data-path {p}: line 1: unrecognised record with keys ['question']; "
                                          "expected one of: text, prompt+response"),
    ("nocol.csv", b"a,b\n1,2\n", "--data-path {p}: the CSV has no 'text' column (columns: a, b)"),
    ("allempty.jsonl", b'{"prompt": "", "response": "x"}\n', "--data-path {p}: no usable samples"),
])
def test_bad_input_messages(tmp_path, name, content, message):
    path = tmp_path / name
    path.write_bytes(content)
    with pytest.raises(ValueError) as err:
        read_data_file(str(path))
    assert message.format(p=path) in str(err.value)


def test_missing_file_and_directory(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"^--val-data-path .*nope.txt: no such file$"):
        read_data_file(str(tmp_path / "nope.txt"), argument="--val-data-path")
    with pytest.raises(ValueError, match="is a directory, expected a data file"):
        read_data_file(str(tmp_path))


def test_truncation_is_counted_and_logged(tmp_path, caplog):
    path = _write(tmp_path, "d.txt", "short\n" + "x" * 50 + "\n")
    with caplog.at_level(logging.WARNING, logger="apt_fast.train"):
        data = load_tokenized(path, APTByteTokenizer(), max_length=10)
    assert data.truncated == 1
    assert len(data.examples[1].source_ids) == 10 and len(data.examples[1].target_ids) == 9
    assert "truncated 1 of 2 samples longer than --max-length 10 tokens" in caplog.text


def test_collate_builds_shifted_targets_with_global_widths():
    tok = APTByteTokenizer()
    data = tokenize_examples([Example("ab", "xyz"), Example("abcd", "q")], tok, max_length=16)
    full = collate(data, [0, 1], pad_id=0, bos_id=1, eos_id=2)
    x, y, z, q = (b + 3 for b in b"xyzq")
    assert full.tgt_in.tolist() == [[1, x, y, z], [1, q, 0, 0]]
    assert full.labels.tolist() == [[x, y, z, 2], [q, 2, IGNORE_INDEX, IGNORE_INDEX]]
    assert full.src_padding.tolist() == [[False, False, True, True], [False] * 4]
    second = collate(data, [0, 1], pad_id=0, bos_id=1, eos_id=2, rank=1, world_size=2)
    assert second.src.shape == (1, 4) and torch.equal(second.labels, full.labels[1:])


def test_epoch_order_depends_on_seed_and_epoch_only():
    assert epoch_batches(10, 4, seed=3, epoch=1) == epoch_batches(10, 4, seed=3, epoch=1)
    assert epoch_batches(10, 4, seed=3, epoch=1) != epoch_batches(10, 4, seed=3, epoch=2)
    assert [len(b) for b in epoch_batches(10, 4, seed=0, epoch=0, min_batch=3)] == [4, 4]
