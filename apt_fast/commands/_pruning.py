"""Options shared by the pruning commands (prune, prune-finetune) and their translation into a pruning config:
which method, its ratio and its settings, each setting refused with a method that does not take it."""

from __future__ import annotations

import argparse
import os

from ..pruning.configs import BLOCKS, NM_GROUPS, SCOPES, STRUCTURED_TARGETS
from ._training import int_at_least

PRUNE_TYPES = ("magnitude", "taylor", "structured", "nm", "block", "wanda")
CALIBRATED = ("taylor", "wanda")  # the methods whose scores are measured on data
NM_PATTERNS = tuple(f"{m // 2}:{m}" for m in NM_GROUPS)  # 2:4, 4:8
BLOCK_SHAPES = tuple(f"{rows}x{cols}" for rows, cols in BLOCKS)
PLOT_FILE = "sparsity.png"
# option dest -> the prune types that take it
SETTINGS = {"scope": ("magnitude", "taylor"), "embedding_ratio": ("magnitude",), "nm": ("nm",),
            "block": ("block",), "target": ("structured",)}


def ratio_type(text: str) -> float:
    """An argparse ``type``: a number in [0, 1), else 'argument --flag: must be a number in [0, 1), got ...'."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a number in [0, 1), got {text!r}") from None
    if not 0.0 <= value < 1.0:
        raise argparse.ArgumentTypeError(f"must be a number in [0, 1), got {text}")
    return value


def add_pruning_arguments(parser: argparse.ArgumentParser, *, type_required: bool,
                          calibration_option: bool) -> None:
    """--prune-type, --prune-ratio, each method's settings and --calibration-samples; with ``calibration_option``
    --calibration-data (else taylor and wanda calibrate on the training data)."""
    parser.add_argument("--prune-ratio", required=True, type=ratio_type, metavar="R",
                        help="the share of the weights pruned, in [0, 1): of each layer (--scope layer), of all "
                             "layers together (--scope global), of the blocks (block) or of the FFN neurons or "
                             "heads (structured); nm: 1 - n/m")
    parser.add_argument("--prune-type", choices=PRUNE_TYPES, required=type_required,
                        **({} if type_required else {"default": "magnitude"}),
                        help="magnitude: smallest |w|; taylor: smallest |w * dL/dw| on calibration data; "
                             "structured: whole FFN neurons or attention heads, the layers shrunk; nm: n of every "
                             "m inputs kept; block: whole tiles; wanda: smallest |w| * ||x|| on calibration data"
                             + ("" if type_required else " (default %(default)s)"))
    parser.add_argument("--scope", choices=SCOPES,
                        help="magnitude, taylor: one threshold per layer or over all layers (default: layer for "
                             "magnitude, global for taylor)")
    parser.add_argument("--embedding-ratio", type=ratio_type, metavar="R",
                        help="magnitude: also prune the output projection tied to the input embedding, at its own "
                             "ratio (default: left dense)")
    parser.add_argument("--nm", choices=NM_PATTERNS, help="nm: the pattern (default 2:4)")
    parser.add_argument("--block", choices=BLOCK_SHAPES, help="block: rows x inputs of a tile (default 32x32)")
    parser.add_argument("--target", choices=STRUCTURED_TARGETS,
                        help="structured: FFN neurons (ffn, the default) or attention heads (heads)")
    if calibration_option:
        parser.add_argument("--calibration-data", metavar="FILE",
                            help="data (the training formats) that taylor and wanda score on, and on which the loss "
                                 "before and after pruning is reported")
    parser.add_argument("--calibration-samples", type=int_at_least(1), default=128, metavar="N",
                        help="use the first N calibration samples (default %(default)s)")


def _given(args: argparse.Namespace, dest: str) -> bool:
    return getattr(args, dest, None) is not None


def pruning_config(args: argparse.Namespace, *, calibrated: bool):
    """The config the flags describe; ValueError naming a setting the method does not take, a ratio nm cannot
    give, or taylor and wanda without calibration data (``calibrated``: whether there is some)."""
    from .. import pruning

    kind = args.prune_type
    for dest, kinds in SETTINGS.items():
        if kind not in kinds and _given(args, dest):
            takers = " and ".join(kinds)
            raise ValueError(f"--{dest.replace('_', '-')} applies to --prune-type {takers}, got --prune-type {kind}")
    if kind in CALIBRATED and not calibrated:
        raise ValueError(f"--prune-type {kind} needs --calibration-data FILE (its scores are measured on data), "
                         f"got none")
    if kind == "magnitude":
        return pruning.MagnitudePruneConfig(args.prune_ratio, scope=args.scope or "layer",
                                            embedding_ratio=args.embedding_ratio)
    if kind == "taylor":
        return pruning.TaylorPruneConfig(args.prune_ratio, scope=args.scope or "global")
    if kind == "wanda":
        return pruning.WandaPruneConfig(args.prune_ratio)
    if kind == "structured":
        return pruning.StructuredPruneConfig(args.prune_ratio, target=args.target or "ffn")
    if kind == "block":
        rows, cols = (args.block or BLOCK_SHAPES[1]).split("x")
        return pruning.BlockPruneConfig(args.prune_ratio, block=(int(rows), int(cols)))
    n, m = (int(x) for x in (args.nm or NM_PATTERNS[0]).split(":"))
    if abs(args.prune_ratio - (1 - n / m)) > 1e-9:
        raise ValueError(f"--prune-ratio must be {1 - n / m:g} for --prune-type nm --nm {n}:{m} ({n} of every {m} "
                         f"weights kept), got {args.prune_ratio:g}")
    return pruning.NMPruneConfig(n, m)


def _setting(args: argparse.Namespace) -> str:
    """The flags that chose what a model's layers may not fit, as given."""
    if args.prune_type == "nm":
        return f"--nm {args.nm or NM_PATTERNS[0]}"
    if args.prune_type == "block":
        return f"--block {args.block or BLOCK_SHAPES[1]}"
    if args.prune_type == "structured":
        return f"--prune-ratio {args.prune_ratio:g} --target {args.target or 'ffn'}"
    return f"--prune-type {args.prune_type}"


def prune_model(model, tokenizer, config, args: argparse.Namespace, calibration, *, batch_size: int):
    """``apt_fast.prune(model, config)``, taylor and wanda calibrated on ``calibration`` (TokenizedData); a layer the
    settings do not fit is a ValueError that starts with the flags that chose them."""
    from ..pruning import prune
    from ..train.calibration import calibration_batches

    batches = calibration_batches(model, tokenizer, calibration, batch_size) if args.prune_type in CALIBRATED else None
    try:
        return prune(model, config, batches)
    except ValueError as err:
        raise ValueError(f"{_setting(args)}: {err}") from None


def refuse_existing_output(flag: str, directory: str, overwrite: bool, names: tuple[str, ...]) -> None:
    """Before anything is loaded: ``directory`` holding one of ``names`` needs --overwrite."""
    if not overwrite and any(os.path.exists(os.path.join(directory, name)) for name in names):
        raise FileExistsError(f"{flag} {directory} already holds a model; pass --overwrite to replace it")
