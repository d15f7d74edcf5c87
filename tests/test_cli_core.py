"""The apt-fast command line: info, bench argument handling, exit codes."""

import pytest

from apt_fast import _native
from apt_fast.cli import main


def test_info_reports_build_and_ops(capsys):
    assert main(["info"]) == 0
    out = capsys.readouterr().out
    assert "apt_fast 0.1.0" in out
    assert "apt_fast::distill_loss_fwd" in out
    if _native.is_available():
        assert f"SIMD in use: {_native.native().simd_level()}" in out


@pytest.mark.parametrize("argv", [["bogus"], ["bench", "--repeats"], []])
def test_bad_arguments_exit_2_with_one_line(argv, capsys):
    assert main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "error:" in err[0]


def test_bench_rejects_unknown_filter(capsys):
    assert main(["bench", "--filter", "no-such-case"]) == 2
    assert "--filter 'no-such-case' matches no benchmark case" in capsys.readouterr().err


def test_every_command_has_help(capsys):
    for command in ["info", "bench"]:
        assert main([command, "--help"]) == 0
        assert f"usage: apt-fast {command}" in capsys.readouterr().out
