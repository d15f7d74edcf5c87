"""`apt-fast bench`: run the benchmark cases, print the table and the target summary, optionally write JSON."""

from __future__ import annotations

import argparse
import sys


def add_parser(subparsers) -> None:
    parser = subparsers.add_parser(
        "bench", help="benchmark apt_fast against its in-run baselines",
        description="Run each case's baseline and apt_fast's kernel in this process on the same inputs (outputs "
                    "checked equal first) and print median/min/max, the ratio, peak memory and, per target, "
                    "✓ (met), ✗ (missed) or ? (not measured), then a summary line.")
    parser.add_argument("--quick", action="store_true", help="smaller shapes and fewer repeats (about a minute)")
    parser.add_argument("--json", metavar="PATH", help="also write the results and the machine as JSON to PATH "
                        "(its directory is created when missing)")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing --json file")
    parser.add_argument("--filter", metavar="NAME", help="only cases whose name contains NAME (or of family NAME)")
    parser.add_argument("--repeats", type=int, metavar="N", help="timed runs per side (default 3 quick, 7 full)")
    parser.add_argument("--check", action="store_true",
                        help="exit with code 1 when a target is missed (timings are noisy: for people, not CI)")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from ..benchmarking import peak_probe, run_case, select_cases
    from ..benchmarking.registry import missing_modules
    from ..benchmarking.report import any_missed, format_table, summary_line, write_json

    if args.repeats is not None and args.repeats < 1:
        raise ValueError(f"--repeats must be >= 1, got {args.repeats}")
    cases = select_cases(quick=args.quick, name_filter=args.filter)
    if not cases:
        raise ValueError(f"--filter {args.filter!r} matches no benchmark case")
    results = []
    for case in cases:
        missing = missing_modules(case)
        if missing:
            print(f"skipping {case.name}: it needs {', '.join(missing)} ({case.requires_hint})", file=sys.stderr)
            continue
        if not args.quiet:
            print(f"running {case.name} ...", file=sys.stderr, flush=True)
        results.append(run_case(case, quick=args.quick, repeats=args.repeats, peak=peak_probe.peak_in_subprocess))
    print(format_table(results))
    print(summary_line(results))
    if args.json:
        write_json(results, args.json)
        print(f"wrote {args.json}")
    return 1 if args.check and any_missed(results) else 0
