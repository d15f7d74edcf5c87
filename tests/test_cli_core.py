"""The apt-fast command line: info, bench argument handling, exit codes, --version, --quiet, python -m."""

import subprocess
import sys

import pytest

from apt_fast import __version__, _native
from apt_fast.cli import build_parser, main


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


def test_every_command_has_help_with_quiet(capsys):
    for command in build_parser().commands:
        assert main([command, "--help"]) == 0
        out = capsys.readouterr().out
        assert f"usage: apt-fast {command}" in out and "--quiet" in out


def test_version(capsys):
    assert main(["--version"]) == 0
    assert capsys.readouterr().out == f"apt-fast {__version__}\n"


def test_python_dash_m_apt_fast_runs_the_command_line():
    result = subprocess.run([sys.executable, "-m", "apt_fast", "--version"], capture_output=True, text=True,
                            timeout=120)
    assert (result.returncode, result.stdout, result.stderr) == (0, f"apt-fast {__version__}\n", "")


@pytest.mark.parametrize("argv, quiet", [
    (["info"], False), (["--quiet", "info"], True), (["-q", "info"], True), (["info", "--quiet"], True),
    (["info", "-q"], True),
])
def test_quiet_goes_before_or_after_the_command(argv, quiet):
    assert build_parser().parse_args(argv).quiet is quiet
