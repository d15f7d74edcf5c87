"""The `apt-fast` command line: `main(argv) -> int`, one module per subcommand in apt_fast/commands/."""

from __future__ import annotations

import argparse
import sys
from typing import List, Optional

from .commands import COMMANDS


class _Parser(argparse.ArgumentParser):
    """Bad arguments give one line on stderr and exit code 2."""

    def error(self, message: str) -> None:  # type: ignore[override]
        self.exit(2, f"{self.prog}: error: {message} (see --help)\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="apt-fast", description="Fast kernels, training and export for APT models.")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    subparsers.required = True
    for command in COMMANDS:
        command.add_parser(subparsers)
    return parser


def main(argv: Optional[List[str]] = None) -> int:
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exit_:
        return int(exit_.code or 0)
    try:
        return int(args.run(args) or 0)
    except KeyboardInterrupt:
        print("apt-fast: interrupted", file=sys.stderr)
        return 130
    except (ValueError, FileNotFoundError, FileExistsError) as error:
        print(f"apt-fast {args.command}: error: {error}", file=sys.stderr)
        return 2


def console_entry() -> None:
    sys.exit(main())


if __name__ == "__main__":
    console_entry()
