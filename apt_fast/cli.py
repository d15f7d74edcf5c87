"""The `apt-fast` command line: `main(argv) -> int`, one module per subcommand in apt_fast/commands/.

Before a command runs, its path and device options are checked (commands/checks.py); a failure the user
can cause (commands/errors.py) prints one line, ``apt-fast CMD: error: ...``, and exits with code 2.
``--quiet`` (before or after the command) hides progress bars and info lines such as the patch report.
"""

from __future__ import annotations

import argparse
import sys

from . import __version__
from .commands import COMMANDS
from .commands.checks import check_arguments
from .commands.errors import USER_ERRORS, one_line

QUIET_HELP = "no progress bars and no info lines (such as the patch report); results and errors still show"


class _Parser(argparse.ArgumentParser):
    """Bad arguments give one line on stderr and exit code 2."""

    commands: dict[str, argparse.ArgumentParser]  # set by build_parser on the top-level parser

    def error(self, message: str) -> None:  # type: ignore[override]
        self.exit(2, f"{self.prog}: error: {message} (see --help)\n")


def build_parser() -> _Parser:
    """The parser; ``parser.commands`` maps each subcommand's name to its parser."""
    parser = _Parser(prog="apt-fast", description="Fast kernels, training and export for APT models.")
    parser.add_argument("--version", action="version", version=f"apt-fast {__version__}")
    parser.add_argument("-q", "--quiet", action="store_true", help=QUIET_HELP)
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    subparsers.required = True
    for command in COMMANDS:
        command.add_parser(subparsers)
    parser.commands = dict(subparsers.choices)
    for command_parser in parser.commands.values():  # also after the command; unset there, the global value holds
        command_parser.add_argument("-q", "--quiet", action="store_true", default=argparse.SUPPRESS, help=QUIET_HELP)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exit_:
        return int(exit_.code or 0)
    try:
        check_arguments(args)
        return int(args.run(args) or 0)
    except KeyboardInterrupt as interrupt:
        print(f"apt-fast {args.command}: {str(interrupt) or 'interrupted'}", file=sys.stderr)
        return 130
    except USER_ERRORS as error:
        print(f"apt-fast {args.command}: error: {one_line(error)}", file=sys.stderr)
        return 2


def console_entry() -> None:
    """`python -m apt_fast.cli` (torchrun's form); the `apt-fast` script is apt_fast_launcher.console_entry."""
    sys.exit(main())


if __name__ == "__main__":
    console_entry()
