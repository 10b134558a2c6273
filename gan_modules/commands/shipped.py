"""`gan-lab shipped`: train every shipped config for a short fixed budget and tabulate its metric
against the untrained generator's (EMD for 2D points, classifier FID for digit images)."""

from __future__ import annotations

import argparse
import fnmatch
import shlex
import sys
from pathlib import Path

NAME = "shipped"
HELP = "train each shipped config briefly; table of its metric before vs after and whether it moved towards the data"


def main(argv: list[str]) -> int:
    from gan_modules.bench.shipped import discover_configs, run_configs, write_report
    from gan_modules.studies.runner import stopped

    parser = argparse.ArgumentParser(prog=f"gan-lab {NAME}", description=HELP)
    parser.add_argument("--configs_dir", default="configs", help="where the shipped configs live")
    parser.add_argument(
        "--select", nargs="+", default=None, help="config-name patterns, e.g. '*/ring8' 'dragan/*' (default all)"
    )
    parser.add_argument("--max_steps", type=int, default=1000, help="generator iterations per config")
    parser.add_argument("--out", default="runs/bench/shipped", help="table and CSV")
    parser.add_argument("--runs_dir", default=None, help="run folders (default <out>/runs)")
    parser.add_argument("--threads", type=int, default=None, help="torch threads per run (OMP_NUM_THREADS)")
    parser.add_argument("--workers", type=int, default=1, help="configs trained at once (worker processes)")
    parser.add_argument("--list", action="store_true", help="print the selected configs and their fit arguments only")
    parser.add_argument("fit_args", nargs="*", help="after '--': fit arguments added to every config")
    args = parser.parse_args(argv)
    try:
        if args.max_steps < 1:
            raise ValueError(f"--max_steps={args.max_steps} is invalid; allowed: an integer >= 1")
        for flag in ("threads", "workers"):
            value = getattr(args, flag)
            if value is not None and value < 1:
                raise ValueError(f"--{flag}={value} is invalid; allowed: an integer >= 1")
        configs = discover_configs(args.configs_dir)
        if args.select:
            configs = [c for c in configs if any(fnmatch.fnmatch(c.name, p) for p in args.select)]
        if not configs:
            raise ValueError(f"--select={' '.join(args.select or [])!r} matches no config in {args.configs_dir!r}")
    except (ValueError, FileNotFoundError) as err:
        print(f"gan-lab {NAME}: error: {err}", file=sys.stderr)
        return 2
    if args.list:
        for config in configs:
            print(f"{config.name}: gan-lab fit {shlex.join(config.fit_args)}")
        return 0
    out = Path(args.out)
    runs_dir = Path(args.runs_dir) if args.runs_dir else out / "runs"
    try:
        results = run_configs(configs, runs_dir, args.max_steps, args.fit_args, args.threads, workers=args.workers)
    except KeyboardInterrupt as err:
        return stopped(NAME, err, "finished configs are kept; the same command fits the rest")
    command = "gan-lab shipped " + shlex.join(argv)
    for path in write_report(results, out, command, args.workers, args.threads):
        print(f"gan-lab {NAME}: wrote {path}")
    return 0 if all(r["status"] == "ok" and r["towards_data"] for r in results) else 1
