"""Subcommands of `apt-fast`; each module has add_parser(subparsers) that sets `run(args) -> int`."""

from . import (
    bench,
    chat,
    demo,
    distill,
    evaluate,
    export_gguf,
    export_ollama,
    fine_tune,
    generate,
    import_gguf,
    info,
    lottery_ticket,
    prune,
    prune_finetune,
    quantize,
    serve,
    train,
)

COMMANDS = [info, bench]
COMMANDS += [fine_tune, train, evaluate, chat, distill, demo]
COMMANDS += [export_gguf, export_ollama, import_gguf, generate, serve]
COMMANDS += [quantize, prune, prune_finetune, lottery_ticket]
