"""`apt-fast generate`: complete one prompt with a model directory, checkpoint or .gguf file."""

from __future__ import annotations

import argparse


def add_parser(subparsers) -> None:
    parser = subparsers.add_parser(
        "generate", help="generate text from a prompt (model directories, checkpoints and .gguf files)",
        description="Encode --prompt, run the model's generate and print the decoded output. A .gguf file's "
                    "Q8_0 tensors stay int8 (weight-only int8 layers); other quantized types are dequantized on load.")
    parser.add_argument("--model-path", required=True, metavar="PATH", help="the model (any APT checkpoint or .gguf)")
    parser.add_argument("--prompt", required=True, help="the input text")
    parser.add_argument("--max-length", type=int, default=50, help="tokens to generate at most (default %(default)s)")
    parser.add_argument("--temperature", type=float, default=1.0, help="default %(default)s")
    parser.add_argument("--top-p", type=float, default=0.9, help="default %(default)s")
    parser.add_argument("--top-k", type=int, default=50, help="default %(default)s")
    parser.add_argument("--greedy", action="store_true", help="argmax decoding instead of sampling")
    parser.add_argument("--seed", type=int, help="seed the sampling")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    import torch

    from ..train.inputs import load_pretrained

    if args.max_length < 1:
        raise ValueError(f"--max-length must be >= 1, got {args.max_length}")
    if args.seed is not None:
        torch.manual_seed(args.seed)
    model, tokenizer = load_pretrained(args.model_path)
    ids = tokenizer.encode(args.prompt)
    if not ids:
        raise ValueError(f"--prompt {args.prompt!r} encodes to no tokens with this model's tokenizer")
    output = model.generate(torch.tensor([ids], dtype=torch.long), max_length=args.max_length,
                            temperature=args.temperature, top_p=args.top_p, top_k=args.top_k,
                            do_sample=not args.greedy)
    print(tokenizer.decode(output[0].tolist(), skip_special_tokens=True))
    return 0
