"""`apt-fast serve`'s arguments: OLLAMA_HOST as Ollama reads it, model names, sizes, and one-line errors."""

from __future__ import annotations

import pytest

from apt_fast.cli import main
from apt_fast.commands.serve import MAX_DEFAULT_PARALLEL, byte_size, default_parallel
from apt_fast.serve.durations import seconds
from apt_fast.serve.host import is_loopback, parse_ollama_host
from apt_fast.serve.models import full_name, models_in, parse_model_argument


@pytest.mark.parametrize("value, expected", [
    (None, ("127.0.0.1", 11434)), ("", ("127.0.0.1", 11434)), ("0.0.0.0", ("0.0.0.0", 11434)),
    ("1.2.3.4:5000", ("1.2.3.4", 5000)), ("http://1.2.3.4", ("1.2.3.4", 80)),
    ("https://example.com", ("example.com", 443)),
    ("http://[::1]:8080/path", ("::1", 8080)), ("[::1]", ("::1", 11434)), ('"localhost:9"', ("localhost", 9)),
    (":8080", ("0.0.0.0", 8080)), ("1.2.3.4:99999", ("1.2.3.4", 11434)),
])
def test_ollama_host(value, expected):
    assert parse_ollama_host(value) == expected


def test_loopback_addresses():
    assert [is_loopback(h) for h in ("127.0.0.1", "127.8.0.1", "::1", "localhost", "0.0.0.0", "10.0.0.1")] == [
        True, True, True, True, False, False]


def test_names_sizes_and_durations(tmp_path):
    assert full_name("x") == "x:latest" and full_name("x:q8") == "x:q8"
    assert parse_model_argument("tiny=/a=b") == ("tiny:latest", "/a=b")
    assert byte_size("8MiB") == 8 << 20 and byte_size("100") == 100 and byte_size("1.5kb") == 1500
    assert seconds("5m") == 300 and seconds("1h30m") == 5400 and seconds(10) == 10 and seconds("-1") == -1
    assert seconds("0") == 0 and seconds("250ms") == 0.25
    (tmp_path / "a").mkdir()
    (tmp_path / "a" / "config.json").write_text("{}")
    (tmp_path / "b.gguf").write_bytes(b"")
    (tmp_path / "notes.txt").write_text("")
    assert models_in(str(tmp_path)) == {"a:latest": str(tmp_path / "a"), "b:latest": str(tmp_path / "b.gguf")}


@pytest.mark.parametrize("argv, message", [
    (["--model", "tiny"], "--model must be NAME=PATH (for example tiny=./tiny-apt), got 'tiny'"),
    (["--model", "tiny=/no/such/dir"], "--model tiny=/no/such/dir: no such file or directory"),
    ([], "no models to serve: give --model NAME=PATH or --models-dir DIR"),
    (["--models-dir", "/no/such/dir"], "--models-dir /no/such/dir: no such directory"),
    (["--keep-alive", "soon", "--model", "t=."], "--keep-alive must be seconds or a duration such as '5m', got 'soon'"),
    (["--parallel", "0", "--model", "t=."], "--parallel must be >= 1, got 0"),
    (["--model", "t=.", "OLLAMA_NUM_PARALLEL=two"], "OLLAMA_NUM_PARALLEL must be a whole number >= 1, got 'two'"),
])
def test_bad_arguments_give_one_line(argv, message, capsys, monkeypatch):
    pytest.importorskip("uvicorn")
    monkeypatch.delenv("OLLAMA_HOST", raising=False)
    for setting in [a for a in argv if "_" in a and "=" in a]:
        monkeypatch.setenv(*setting.split("=", 1))
        argv = [a for a in argv if a != setting]
    assert main(["serve", *argv]) == 2
    assert capsys.readouterr().err == f"apt-fast serve: error: {message}\n"


def test_missing_extra_says_how_to_install_it(capsys, monkeypatch):
    import sys

    monkeypatch.setitem(sys.modules, "uvicorn", None)
    assert main(["serve", "--model", "t=."]) == 2
    err = capsys.readouterr().err
    assert err.startswith("apt-fast serve: error: apt-fast serve needs the serve extra: pip install 'apt-fast[serve]'")


def test_binding_beyond_loopback_warns_and_turns_the_host_check_off(tmp_path, capsys, monkeypatch):
    uvicorn = pytest.importorskip("uvicorn")
    runs = []
    monkeypatch.setattr(uvicorn, "run", lambda app, **kwargs: runs.append((app, kwargs)))
    monkeypatch.setenv("OLLAMA_HOST", "0.0.0.0:9999")
    (tmp_path / "m").mkdir()
    assert main(["serve", "--model", f"m={tmp_path / 'm'}"]) == 0
    [(app, kwargs)] = runs
    app.state.pool.shutdown()
    assert (kwargs["host"], kwargs["port"], app.state.config.check_host) == ("0.0.0.0", 9999, False)
    warning = "warning: listening on 0.0.0.0, not a loopback address; there is no authentication"
    assert warning in capsys.readouterr().err
    assert main(["serve", "--host", "127.0.0.1", "--port", "11500", "--model", f"m={tmp_path / 'm'}"]) == 0
    runs[1][0].state.pool.shutdown()
    assert (runs[1][1]["host"], runs[1][1]["port"], runs[1][0].state.config.check_host) == ("127.0.0.1", 11500, True)
    assert "warning" not in capsys.readouterr().err


def test_parallel_defaults_to_ollama_num_parallel_else_one_worker_per_core():
    import os

    assert default_parallel("3") == 3
    assert default_parallel(None) == default_parallel(" ") == min(MAX_DEFAULT_PARALLEL, len(os.sched_getaffinity(0)))
    with pytest.raises(ValueError, match="OLLAMA_NUM_PARALLEL must be a whole number >= 1, got '0'"):
        default_parallel("0")
