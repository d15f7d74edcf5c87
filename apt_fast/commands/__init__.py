"""Subcommands of `apt-fast`; each module has add_parser(subparsers) that sets `run(args) -> int`."""

from . import bench, info

COMMANDS = [info, bench]
