"""`apt-fast chat`: talk to a model, interactively or line by line from a pipe."""

from __future__ import annotations

import argparse
import sys


def add_parser(subparsers) -> None:
    parser = subparsers.add_parser(
        "chat", help="chat with a model (interactive, or one reply per input line from a pipe)",
        description="Each input line is a message; the reply is generated from the recent conversation. "
                    "On a terminal: /reset forgets the conversation, /exit or Ctrl-D quits. From a pipe: one reply "
                    "per line on stdout.")
    parser.add_argument("--model-path", required=True, metavar="PATH", help="the model (any APT checkpoint)")
    parser.add_argument("--max-new-tokens", type=int, default=64, help="default %(default)s")
    parser.add_argument("--temperature", type=float, default=0.7, help="default %(default)s")
    parser.add_argument("--top-p", type=float, default=0.9, help="default %(default)s")
    parser.add_argument("--top-k", type=int, default=50, help="default %(default)s")
    parser.add_argument("--greedy", action="store_true", help="argmax decoding instead of sampling")
    parser.add_argument("--history", type=int, default=3, metavar="N",
                        help="earlier exchanges the model sees, 0 for none (default %(default)s)")
    parser.add_argument("--seed", type=int, help="seed the sampling")
    parser.add_argument("--no-fast", action="store_true", help="run without apt_fast's kernels (plain PyTorch)")
    parser.set_defaults(run=run)


def _messages(interactive: bool):
    """Input lines; on a terminal with a prompt, ending on EOF."""
    while True:
        try:
            line = input("you> ") if interactive else sys.stdin.readline()
        except EOFError:
            return
        if not interactive and not line:
            return
        yield line.strip()


def run(args: argparse.Namespace) -> int:
    import torch

    from ..train.chat import ChatSession, ChatSettings
    from ..train.fast_path import apply_fast_path
    from ..train.inputs import load_pretrained
    from ._training import configure_logging

    settings = ChatSettings(max_new_tokens=args.max_new_tokens, temperature=args.temperature, top_p=args.top_p,
                            top_k=args.top_k, greedy=args.greedy, history=args.history)
    configure_logging(quiet=args.quiet)
    if args.seed is not None:
        torch.manual_seed(args.seed)
    model, tokenizer = load_pretrained(args.model_path)
    apply_fast_path(model, not args.no_fast)
    session = ChatSession(model, tokenizer, settings)
    interactive = sys.stdin.isatty()
    if interactive:
        print(f"chatting with {args.model_path}; /reset forgets the conversation, /exit quits")
    for message in _messages(interactive):
        if message in ("/exit", "/quit"):
            break
        if message == "/reset":
            session.reset()
            continue
        if message:
            reply = session.reply(message)
            print(f"apt> {reply}" if interactive else reply, flush=True)
    return 0
