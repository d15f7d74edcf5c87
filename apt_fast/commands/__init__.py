"""Subcommands of `apt-fast`; each module has add_parser(subparsers) that sets `run(args) -> int`."""

from . import bench, info
from . import chat, distill, evaluate, fine_tune, train

COMMANDS = [info, bench]
COMMANDS += [fine_tune, train, evaluate, chat, distill]
