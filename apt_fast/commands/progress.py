"""What a command shows besides its results: progress bars and the engine's info lines (the patch report)."""

from __future__ import annotations

import argparse
import sys


def show_progress(args: argparse.Namespace) -> bool:
    """Progress bars are for a person watching a terminal: off with --quiet and when stderr is not a terminal."""
    return not args.quiet and sys.stderr.isatty()
