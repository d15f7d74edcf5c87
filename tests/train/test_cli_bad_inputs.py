"""Every subcommand against bad inputs: exit code 2, one line on stderr that names the culprit, nothing on
stdout and nothing written.

The cases come from the parser: every option of a checked kind (apt_fast/commands/checks.py:
ARGUMENT_KINDS) on every subcommand gets each bad value of its kind, the other options valid, so a new
subcommand or option is covered without editing this file. No run gets as far as training, exporting or
writing anything.
"""

from __future__ import annotations

import json
import os
import shutil

import pytest
import torch
from train_helpers import TINY, make_tiny_model, reversal_records, write_jsonl

from apt_fast.cli import build_parser, main
from apt_fast.commands._pruning import ratio_type
from apt_fast.commands.checks import ARGUMENT_KINDS, Kind, flag

PARSER = build_parser()


class Foreign:
    """Pickled by reference (tests' module), so torch.load(weights_only=True) refuses it."""


def _model_copy(files, tmp, name, edit):
    path = tmp / name
    shutil.copytree(files / "model", path)
    edit(path)
    return str(path)


def _truncate(path, size):
    with open(path, "r+b") as f:
        f.truncate(size)


def _write(path, data: bytes) -> str:
    path.write_bytes(data)
    return str(path)


def _non_utf8_metadata_gguf(files, tmp) -> str:
    """The valid GGUF with its first metadata string ("apt", general.architecture) made invalid UTF-8."""
    data = (files / "model.gguf").read_bytes()
    length_and_text = (3).to_bytes(8, "little") + b"apt"
    assert length_and_text in data
    return _write(tmp / "non-utf8-metadata.gguf",
                  data.replace(length_and_text, length_and_text[:8] + b"\xff\xfe\xfd", 1))


def _foreign_pickle(tmp) -> str:
    torch.save({"model_state_dict": Foreign()}, tmp / "foreign.pt")
    return str(tmp / "foreign.pt")


def _truncated_pt(tmp) -> str:
    torch.save({"model_state_dict": {"token_embedding.weight": torch.zeros(4, 4)}}, tmp / "truncated.pt")
    _truncate(tmp / "truncated.pt", os.path.getsize(tmp / "truncated.pt") // 2)
    return str(tmp / "truncated.pt")


def _truncated_gguf(files, tmp) -> str:
    return _write(tmp / "truncated.gguf", (files / "model.gguf").read_bytes()[:300])


ROOT_WRITES_ANYWHERE = pytest.mark.skipif(
    os.geteuid() == 0, reason="root writes into a chmod 0o500 directory; the cases in /proc and under a regular "
                              "file are unwritable for every user")


def _read_only_dir(files, tmp) -> str:
    locked = tmp / "read-only"
    locked.mkdir()
    locked.chmod(0o500)
    return str(locked / "out")


_FILES = {
    "missing": lambda files, tmp: str(files / "missing"),
    "empty file": lambda files, tmp: _write(tmp / "empty", b""),
    "directory": lambda files, tmp: str(files / "a-directory"),
    "text file": lambda files, tmp: _write(tmp / "notes.txt", b"hello\nworld\n"),
    "binary file": lambda files, tmp: _write(tmp / "binary.bin", bytes(range(255, -1, -1)) * 4),
    "non-UTF-8 text": lambda files, tmp: _write(tmp / "latin1.jsonl", '{"prompt": "caf\xe9", "response": "x"}\n'
                                                 .encode("latin-1")),
}

# kind -> bad value name -> (files, tmp_path) -> the value (and extra arguments)
BAD_VALUES = {
    Kind.INPUT_DIR: {name: _FILES[name] for name in ("missing", "empty file")},
    Kind.MODEL: {
        **{name: _FILES[name] for name in ("missing", "empty file", "text file", "binary file")},
        "directory without a model": _FILES["directory"],
        "data file": lambda files, tmp: str(files / "train.jsonl"),
        "GGUF with a bad magic number": lambda files, tmp: _write(tmp / "bad-magic.gguf", b"GGUX" + bytes(60)),
        "truncated GGUF": lambda files, tmp: _truncated_gguf(files, tmp),
        "truncated safetensors": lambda files, tmp: _model_copy(
            files, tmp, "truncated-model", lambda p: _truncate(p / "model.safetensors", 1000)),
        "truncated .pt": lambda files, tmp: _truncated_pt(tmp),
        "pickle of foreign objects": lambda files, tmp: _foreign_pickle(tmp),
        "non-UTF-8 config.json": lambda files, tmp: _model_copy(
            files, tmp, "latin1-config", lambda p: (p / "config.json").write_bytes(b"\xff{")),
    },
    Kind.DATA: {
        **{name: _FILES[name] for name in ("missing", "empty file", "directory", "binary file", "non-UTF-8 text")},
        "truncated JSON Lines": lambda files, tmp: _write(tmp / "cut.jsonl", b'{"prompt": "ab", "resp'),
        "JSON that is not records": lambda files, tmp: _write(tmp / "number.json", b"42"),
        "CSV without a text column": lambda files, tmp: _write(tmp / "table.csv", b"a,b\n1,2\n"),
    },
    Kind.JSON: {
        **{name: _FILES[name] for name in ("missing", "empty file", "directory", "binary file")},
        "truncated JSON": lambda files, tmp: _write(tmp / "cut.json", b'{"d_model": 1'),
        "JSON list": lambda files, tmp: _write(tmp / "list.json", b"[1, 2]"),
        "non-UTF-8 JSON": lambda files, tmp: _write(tmp / "latin1.json", b'{"name": "caf\xe9"}'),
    },
    Kind.GGUF: {
        **{name: _FILES[name] for name in ("missing", "empty file", "directory", "text file")},
        "bad magic number": lambda files, tmp: _write(tmp / "bad-magic.gguf", b"GGUX" + bytes(60)),
        "truncated": lambda files, tmp: _truncated_gguf(files, tmp),
        "non-UTF-8 metadata": lambda files, tmp: _non_utf8_metadata_gguf(files, tmp),
    },
    Kind.OUTPUT_DIR: {
        "under a regular file": lambda files, tmp: str(files / "train.jsonl" / "out"),
        "a regular file": lambda files, tmp: str(files / "train.jsonl"),
        "in /proc": lambda files, tmp: "/proc/apt-fast-test/out",
        "in /sys": lambda files, tmp: "/sys/apt-fast-test",
        "empty path": lambda files, tmp: "",
        "read-only directory": _read_only_dir,
    },
    Kind.OUTPUT_FILE: {
        "under a regular file": lambda files, tmp: str(files / "train.jsonl" / "out.file"),
        "a directory": lambda files, tmp: str(files / "a-directory"),
        "in /proc": lambda files, tmp: "/proc/apt-fast-test.file",
        "existing file without --overwrite": lambda files, tmp: _write(tmp / "existing.file", b"the user's"),
        "special file with --overwrite": lambda files, tmp: ("/dev/full", ["--overwrite"]),
        "empty path": lambda files, tmp: "",
        "read-only directory": _read_only_dir,
    },
    Kind.DEVICE: {
        "unknown kind": lambda files, tmp: "tpu",
        "malformed index": lambda files, tmp: "cuda:x",
        "empty": lambda files, tmp: "",
        "index beyond the devices": lambda files, tmp: "cuda:99",
        **({} if torch.cuda.is_available() else {"cuda on a CPU build": lambda files, tmp: "cuda"}),
    },
}


MARKS = {"read-only directory": ROOT_WRITES_ANYWHERE}


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    """Valid inputs of every kind (a tiny model, its GGUF, data, a model config) and room for bad ones."""
    from apt_fast.export import export_gguf
    from apt_fast.train.checkpointing import save_model

    root = tmp_path_factory.mktemp("inputs")
    model, tokenizer = make_tiny_model()
    save_model(model, str(root / "model"), tokenizer)
    export_gguf(model, root / "model.gguf", "f32", tokenizer, progress=False)
    write_jsonl(root / "train.jsonl", reversal_records(16))
    (root / "model.json").write_text(json.dumps(TINY), encoding="utf-8")
    (root / "a-directory").mkdir()
    return root


def _valid(kind: Kind, files, tmp_path) -> str:
    return {Kind.MODEL: str(files / "model"), Kind.DATA: str(files / "train.jsonl"),
            Kind.JSON: str(files / "model.json"), Kind.GGUF: str(files / "model.gguf"),
            Kind.OUTPUT_DIR: str(tmp_path / "out"), Kind.OUTPUT_FILE: str(tmp_path / "out.file"),
            Kind.DEVICE: "cpu"}[kind]


def _options(parser):
    """The options the cases set: those of a checked kind, and the other required ones."""
    return [a for a in parser._actions if a.option_strings and (a.dest in ARGUMENT_KINDS or a.required)]


def _cases():
    for command, parser in PARSER.commands.items():
        for action in _options(parser):
            kind = ARGUMENT_KINDS.get(action.dest)
            for name, make in (BAD_VALUES[kind].items() if kind else ()):
                yield pytest.param(command, action.dest, make, id=f"{command} {flag(action.dest)}: {name}",
                                   marks=MARKS.get(name, ()))


def _required_value(action) -> str:
    """A valid value of a required option that is not of a checked kind: its first choice, 0.5 for a ratio in
    [0, 1), else '1'."""
    if action.choices:
        return str(action.choices[0])
    return "0.5" if action.type is ratio_type else "1"


def _argv(command: str, target: str, value: str, files, tmp_path) -> list[str]:
    """The command with ``target`` set to ``value`` and its other options valid: checked kinds get a valid
    path or device, other required options a valid value (_required_value); of mutually exclusive options, the
    target or the first."""
    parser = PARSER.commands[command]
    left_out = set()
    for group in parser._mutually_exclusive_groups:
        members = [a.dest for a in group._group_actions]
        left_out |= set(members) - {target if target in members else members[0]}
    argv = [command]
    for action in _options(parser):
        if action.dest == target:
            argv += [action.option_strings[-1], value]
        elif action.dest not in left_out:
            kind = ARGUMENT_KINDS.get(action.dest)
            argv += [action.option_strings[-1], _valid(kind, files, tmp_path) if kind else _required_value(action)]
    return argv


def test_every_checked_kind_has_bad_values():
    assert set(BAD_VALUES) == set(Kind)


def test_every_path_option_has_a_checked_kind():
    """An option whose value is a path must be in ARGUMENT_KINDS, or it would escape the checks and this test."""
    for command, parser in PARSER.commands.items():
        for action in parser._actions:
            if action.metavar in ("PATH", "FILE", "DIR", "JSON") and action.dest != "resume":
                assert action.dest in ARGUMENT_KINDS, f"{command} {action.option_strings}"


def _run(argv, capsys):
    code = main(argv)
    out, err = capsys.readouterr()
    assert "Traceback" not in err, err
    return code, out, err.splitlines()


@pytest.mark.parametrize("command, target, make", list(_cases()))
def test_bad_input_is_one_line_and_exit_code_2(command, target, make, files, tmp_path, capsys):
    """With --quiet stderr is the error line alone; without, the same line ends stderr after the info lines
    of work done before the input was read (a data file is read after the model is loaded)."""
    value = make(files, tmp_path)
    value, extra = value if isinstance(value, tuple) else (value, [])
    argv = _argv(command, target, value, files, tmp_path) + extra
    before = sorted(os.listdir(files))

    code, out, quiet_lines = _run(["--quiet", *argv], capsys)
    assert code == 2 and out == "" and len(quiet_lines) == 1, (argv, quiet_lines)
    assert quiet_lines[0].startswith(f"apt-fast {command}: error: ")
    assert flag(target) in quiet_lines[0] or (value and value in quiet_lines[0]), quiet_lines[0]  # names the culprit
    assert "weights_only` set to `False`" not in quiet_lines[0]  # torch's advice, which would run the file's code
    code, out, lines = _run(argv, capsys)
    assert code == 2 and out == "" and lines[-1] == quiet_lines[0], lines
    assert not os.path.exists(tmp_path / "out") and not os.path.exists(tmp_path / "out.file")  # nothing written
    assert sorted(os.listdir(files)) == before


@pytest.mark.parametrize("command", sorted(PARSER.commands))
def test_unknown_option_is_one_line_and_exit_code_2(command, capsys):
    assert main([command, "--no-such-option"]) == 2  # or the missing required options, reported first
    lines = capsys.readouterr().err.splitlines()
    assert len(lines) == 1 and lines[0].startswith("apt-fast") and ": error: " in lines[0], lines
