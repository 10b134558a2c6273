"""`gan-lab lecture <name>`: reproduce one of the lecture's claims, print its numbers, save a figure."""

from __future__ import annotations

import argparse
import sys
import time

from gan_modules.lecture import EXPERIMENTS, get_experiment
from gan_modules.lecture.common import DEFAULT_OUT, SIZES, check_size

NAME = "lecture"
HELP = "run one of the lecture's experiments (" + ", ".join(EXPERIMENTS) + ")"


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="gan-lab lecture", description=HELP)
    parser.add_argument("name", help="one of: " + ", ".join(EXPERIMENTS))
    parser.add_argument("--size", default="full", help=f"{' or '.join(SIZES)} (small: the tests' size, seconds)")
    parser.add_argument("--out", default=DEFAULT_OUT, help="folder for the figure (default: %(default)s)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    try:
        run = get_experiment(args.name)
        check_size(args.size)
    except ValueError as err:
        print(f"gan-lab lecture: error: {err}", file=sys.stderr)
        return 2
    start = time.perf_counter()
    run(size=args.size, out_dir=args.out, seed=args.seed)
    print(f"gan-lab lecture: {args.name} ({args.size}) done in {time.perf_counter() - start:.1f} s")
    return 0
