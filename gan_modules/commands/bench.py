"""`gan-lab bench`: a grid of variants x datasets x seeds, each a normal `gan-lab fit`, aggregated
into mean +- std tables (Markdown, CSV) and metric-vs-iteration plots with seed bands."""

from __future__ import annotations

import argparse
import os
import shlex
import sys
from collections.abc import Mapping
from dataclasses import replace
from pathlib import Path

NAME = "bench"
HELP = "run a benchmark grid (variants x datasets x seeds) and write mean ± std tables and curves"


def _names(value: str | None, known: list[str], flag: str) -> list[str] | None:
    if value is None:
        return None
    names = [v.strip() for v in value.split(",") if v.strip()]
    for name in names:
        if name not in known:
            raise ValueError(f"{flag}={name!r} is not in the grid; allowed: {', '.join(known)}")
    return names


TIMING_ENVIRONMENT = ("GLIBC_TUNABLES",)  # variables that change a run's CPU time, not its result


def reproducing_command(argv: list[str], threads: int | None, environ: Mapping[str, str]) -> str:
    """The report's command for the whole grid, with the environment its CPU times were taken in:
    the threads per run and glibc's allocator settings (keeping freed memory saves a CPU run the
    page faults of re-mapping its large tensors every step, docs/performance.md)."""
    env = [f"{name}={shlex.quote(environ[name])}" for name in TIMING_ENVIRONMENT if environ.get(name)]
    env += [f"OMP_NUM_THREADS={threads}"] if threads else []
    return " ".join([*env, "gan-lab bench", *(shlex.quote(a) for a in _whole_grid_argv(argv))])


def _whole_grid_argv(argv: list[str]) -> list[str]:
    """`argv` without the flags that pick part of the grid (or only say how many cells train at
    once): the command that makes the whole report (finished runs are skipped, so it also
    completes a grid that was run piece by piece)."""
    kept, skip = [], False
    for arg in argv:
        name = arg.split("=", 1)[0]
        if skip:
            skip = False
        elif name in ("--variants", "--datasets", "--workers"):
            skip = "=" not in arg
        elif name not in ("--report_only", "--retry_failed", "--reevaluate"):
            kept.append(arg)
    return kept


def main(argv: list[str]) -> int:
    from gan_modules.bench.grid import load_grid, parse_seeds
    from gan_modules.bench.report import write_report
    from gan_modules.bench.runner import changed_cells, check_cells, load_result, run_grid
    from gan_modules.studies.runner import stopped

    parser = argparse.ArgumentParser(prog=f"gan-lab {NAME}", description=HELP)
    parser.add_argument("--config", required=True, help="grid file, e.g. configs/bench/toy.yaml")
    parser.add_argument("--out", default=None, help="tables and plots (default runs/bench/<name>)")
    parser.add_argument("--runs_dir", default=None, help="run folders (default <out>/runs)")
    parser.add_argument("--seeds", type=int, nargs="+", default=None, help="N (seeds 0..N-1) or a list of seeds")
    parser.add_argument("--max_steps", type=int, default=None, help="generator iterations per run (overrides)")
    parser.add_argument("--variants", default=None, help="comma-separated subset of the grid's variants")
    parser.add_argument("--datasets", default=None, help="comma-separated subset of the grid's datasets")
    parser.add_argument("--threads", type=int, default=None, help="torch threads per run (OMP_NUM_THREADS)")
    parser.add_argument("--workers", type=int, default=1, help="cells trained at once (worker processes)")
    parser.add_argument("--retry_failed", action="store_true", help="train again the runs that failed")
    parser.add_argument("--report_only", action="store_true", help="rebuild tables from finished runs only")
    parser.add_argument(
        "--reevaluate", action="store_true", help="score finished runs' final checkpoints again (fits kept)"
    )
    args = parser.parse_args(argv)
    try:
        grid = load_grid(args.config)
        if args.seeds is not None:
            grid.seeds = parse_seeds(args.seeds[0] if len(args.seeds) == 1 else args.seeds)
        if args.max_steps is not None:
            if args.max_steps < 1:
                raise ValueError(f"--max_steps={args.max_steps} is invalid; allowed: an integer >= 1")
            grid.max_steps = args.max_steps
        for flag in ("threads", "workers"):
            value = getattr(args, flag)
            if value is not None and value < 1:
                raise ValueError(f"--{flag}={value} is invalid; allowed: an integer >= 1")
        keep_v = _names(args.variants, [v.name for v in grid.variants], "--variants")
        keep_d = _names(args.datasets, [d.name for d in grid.datasets], "--datasets")
    except (ValueError, FileNotFoundError) as err:
        print(f"gan-lab {NAME}: error: {err}", file=sys.stderr)
        return 2
    selected = grid
    if keep_v:
        selected = replace(selected, variants=[v for v in selected.variants if v.name in keep_v])
    if keep_d:
        selected = replace(selected, datasets=[d for d in selected.datasets if d.name in keep_d])
    out = Path(args.out or Path("runs") / "bench" / grid.name)
    runs_dir = Path(args.runs_dir) if args.runs_dir else out / "runs"
    changed = changed_cells(grid, runs_dir)
    if changed:  # neither skipped as done nor resumed under other settings: the user decides
        print(
            f"gan-lab {NAME}: error: {changed[0]} was fitted from other configs or arguments than the grid gives "
            f"it now ({len(changed)} cell(s) in all); allowed: move those run folders away to fit them again, or "
            "restore the former configs",
            file=sys.stderr,
        )
        return 2
    if not args.report_only:
        try:
            check_cells(selected)
        except ValueError as err:
            print(f"gan-lab {NAME}: error: {err}", file=sys.stderr)
            return 2
        except KeyboardInterrupt as err:  # while the commands were parsed: no cell had started
            return stopped(NAME, err, "no cell was started")
        options = {"workers": args.workers, "reevaluate_finished": args.reevaluate}
        try:
            run_grid(selected, runs_dir, args.threads, args.retry_failed, **options)
        except KeyboardInterrupt as err:
            return stopped(NAME, err, "finished cells are kept; the same command resumes the rest")
    # the report covers every finished run of the whole grid, so finishing a grid piece by piece
    # (--variants/--datasets) never drops the cells an earlier invocation made
    results = [r for r in (load_result(run, runs_dir) for run in grid.runs()) if r is not None]
    if not results:
        print(f"gan-lab {NAME}: error: no finished runs under --runs_dir={str(runs_dir)!r}", file=sys.stderr)
        return 2
    command = reproducing_command(argv, args.threads, os.environ)
    report = write_report(grid, results, runs_dir, out, command, args.threads)
    print(report.read_text())
    print(f"gan-lab {NAME}: wrote {report} (+ summary.csv, runs.csv) from {len(results)} runs")
    failed = [r for r in results if r["status"] != "ok"]
    if failed:  # a grid with a failed cell is not a result to build on: say so in the exit status
        print(f"gan-lab {NAME}: {len(failed)} of {len(results)} runs failed (listed in {report})", file=sys.stderr)
        return 1
    return 0
