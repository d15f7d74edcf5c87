"""Subcommands of `apt-fast`; each module has add_parser(subparsers) that sets `run(args) -> int`."""

from . import bench, info
from . import chat, demo, distill, evaluate, fine_tune, train
from . import export_gguf, export_ollama, generate, import_gguf, quantize

COMMANDS = [info, bench]
COMMANDS += [fine_tune, train, evaluate, chat, distill, demo]
COMMANDS += [export_gguf, export_ollama, import_gguf, generate]
COMMANDS += [quantize]
