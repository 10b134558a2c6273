"""Run the grid: each cell is a normal `gan-lab fit` in its own process and folder, then
`gan-lab evaluate` of its final checkpoint. Finished cells are skipped, so a bench resumes.

Why a fresh process per run: every run gets exactly what a user's `gan-lab fit` gets (config
parsing, W&B, DDP launch, checkpoint resume) and nothing leaks between runs (RNG state, torch
threads, loggers). Why the final checkpoint: Lucic et al. 2018 report the distribution of the
final models over seeds; picking each run's best step would report an optimistic outlier.

What a seed S changes: `seed_everything` (network initialisation), `model.init_args.seed` (noise
and penalty draws, fixed evaluation noise) and `data.init_args.seed` (the order of real batches;
for the 2D mixtures also the training sample drawn from the mixture). The evaluation protocol
(its sample seed, sample counts) is the same for every run.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import math
import os
import resource
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import optuna
import yaml
from optuna.distributions import BaseDistribution, CategoricalDistribution

from gan_modules.bench.grid import Grid, Run
from gan_modules.cli import resume_checkpoint
from gan_modules.paths import write_json
from gan_modules.studies.runner import Outcome, Task, enqueue, interrupted_exit, launch, storage
from gan_modules.studies.space import arg_value

RESULT_FILE = "result.json"
# what a result.json records of the fit itself, kept when the cell is evaluated again
FIT_KEYS = ("variant", "dataset", "seed", "returncode", "fit_wall_s", "fit_cpu_s", "resumed", "segments", "command")
LAST_CHECKPOINT = Path("checkpoints") / "last.ckpt"  # the final model, relative to a run folder
OVERRIDES_FILE = "bench_run.yaml"
INPUTS_FILE = "fit_inputs.sha256"  # `fit_inputs` of the cell's fit, written before it starts
EVALUATION_FILE = "evaluate.json"
TIME_FILE = "fit_time.json"  # the time of each `gan-lab fit` process of a run folder (see `fit`)
CURVES_CALLBACK = "gan_modules.bench.MetricsHistory"
CURVE_DEFAULTS = {"save_best": False}  # the bench evaluates the final model; no best-checkpoint files


def run_overrides(run: Run, grid: Grid, folder: Path) -> dict[str, Any]:
    """The second `--config` of a run: its folder, its seed and its dataset."""
    data = {**run.dataset.data, "init_args": {**(run.dataset.data.get("init_args") or {}), "seed": run.seed}}
    trainer: dict[str, Any] = {"default_root_dir": str(folder), "enable_progress_bar": False}
    if grid.max_steps is not None:
        trainer["max_steps"] = grid.max_steps
    return {"seed_everything": run.seed, "trainer": trainer, "model": {"init_args": {"seed": run.seed}}, "data": data}


def curve_args(options: dict[str, Any]) -> list[str]:
    """The fit arguments that add the metric-history callback with its options (metrics at fixed
    points along a fit)."""
    args = [f"--trainer.callbacks+={CURVES_CALLBACK}"]
    for key, value in {**CURVE_DEFAULTS, **options}.items():
        args.append(f"--trainer.callbacks.{key}={arg_value(value)}")
    return args


def fit_args(run: Run, grid: Grid, overrides: Path) -> list[str]:
    """The arguments of `gan-lab fit` for one run (later arguments win)."""
    args = ["fit", *[a for c in run.variant.configs for a in ("--config", str(c))], "--config", str(overrides)]
    args += [*grid.fit_args, *run.dataset.args, *run.variant.args, *run.variant.dataset_args.get(run.dataset.name, ())]
    if grid.curves is not None:
        args += curve_args({**grid.curves, **run.dataset.curves})
    return args


def fit_inputs(run: Run, grid: Grid) -> str:
    """A digest of what decides a cell's fit: the text of its config files, its arguments and its
    overrides, its folder aside, so a moved runs folder still matches and an edited config does not."""
    texts = {str(c): c.read_text() for c in run.variant.configs}
    args = [texts.get(a, a) for a in fit_args(run, grid, Path(OVERRIDES_FILE))]
    overrides = run_overrides(run, grid, Path("."))
    return hashlib.sha256(json.dumps([args, overrides], sort_keys=True).encode()).hexdigest()


def changed_cells(grid: Grid, runs_dir: Path) -> list[Path]:
    """The folders of cells, finished or interrupted, fitted from other inputs than the grid gives
    them now (folders without an INPUTS_FILE predate it and are taken as they are)."""
    changed = []
    for run in grid.runs():
        recorded = run.folder(runs_dir) / INPUTS_FILE
        if recorded.is_file() and recorded.read_text().strip() != fit_inputs(run, grid):
            changed.append(run.folder(runs_dir))
    return changed


def evaluate_args(checkpoint: Path, options: dict[str, Any], out: Path) -> list[str]:
    args = ["--ckpt_path", str(checkpoint), "--json", str(out)]
    for key, value in options.items():
        if key == "metrics" and isinstance(value, list):
            value = ",".join(value)
        args += [f"--{key}", str(value)]
    return args


def _child_cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def fit(folder: Path, args: list[str], threads: int | None = None, timeout_s: float | None = None) -> dict[str, Any]:
    """`gan-lab <args>` in a subprocess; output to `<folder>/fit.log`. Returns the exit status
    (`returncode` None: stopped after `timeout_s`) and the fit's time: a fit resumed after a stop
    costs all its processes, so each one's time is listed in `<folder>/fit_time.json` and the
    totals are returned (`segments`: how many processes; a fresh start begins a new list)."""
    env = dict(os.environ)
    if threads is not None:
        env.update(OMP_NUM_THREADS=str(threads), MKL_NUM_THREADS=str(threads))
    resumed = resume_checkpoint(folder) is not None  # what `gan-lab fit` will resume from, SLURM ones included
    ledger = folder / TIME_FILE
    segments = json.loads(ledger.read_text()) if resumed and ledger.is_file() else []
    cpu0, wall0 = _child_cpu_seconds(), time.perf_counter()
    with (folder / "fit.log").open("a") as log:
        try:
            code: int | None = subprocess.run(
                [sys.executable, "-m", "gan_modules.cli", *args],
                stdout=log,
                stderr=subprocess.STDOUT,
                env=env,
                timeout=timeout_s,
            ).returncode
        except subprocess.TimeoutExpired:  # the child is killed by subprocess.run
            code = None
    segments.append({"wall_s": time.perf_counter() - wall0, "cpu_s": _child_cpu_seconds() - cpu0, "returncode": code})
    write_json(ledger, segments)
    return {
        "returncode": code,
        "fit_wall_s": math.fsum(s["wall_s"] for s in segments),
        "fit_cpu_s": math.fsum(s["cpu_s"] for s in segments),
        "resumed": resumed,
        "segments": len(segments),
        "command": "gan-lab " + " ".join(args),
    }


def train(run: Run, grid: Grid, folder: Path, threads: int | None = None) -> dict[str, Any]:
    """The bench's fit of one cell, with its overrides file (folder, seed, dataset)."""
    folder.mkdir(parents=True, exist_ok=True)
    overrides = folder / OVERRIDES_FILE
    overrides.write_text(yaml.safe_dump(run_overrides(run, grid, folder), sort_keys=False))
    (folder / INPUTS_FILE).write_text(fit_inputs(run, grid) + "\n")
    return fit(folder, fit_args(run, grid, overrides), threads)


def evaluate(
    folder: Path,
    options: dict[str, Any],
    checkpoint: Path = LAST_CHECKPOINT,
    out_name: str = EVALUATION_FILE,
) -> tuple[int, dict[str, Any], str]:
    """`gan-lab evaluate` of `<folder>/<checkpoint>` (the final model by default), in this process
    (no second interpreter start-up per run); the JSON goes to `<folder>/<out_name>`."""
    from gan_modules.commands import evaluate as evaluate_command

    out = folder / out_name
    buffer = io.StringIO()
    with contextlib.redirect_stdout(buffer), contextlib.redirect_stderr(buffer):
        try:
            code = evaluate_command.main(evaluate_args(folder / checkpoint, options, out))
        except SystemExit as exit_:  # argparse errors
            code = int(exit_.code or 1)
    payload = evaluate_command.read_results(out) if code == 0 and out.is_file() else {}
    return code, payload, buffer.getvalue()


def log_tail(path: Path, lines: int = 5) -> str:
    return "\n".join(path.read_text(errors="replace").splitlines()[-lines:]) if path.is_file() else ""


def failure(returncode: int | None, folder: Path) -> str:
    """Why a cell's fit failed: its log's last lines, and last (what the bench prints) the signal
    that killed it, if one did: a process killed outright (an out-of-memory killer, `kill -9`)
    writes no error of its own, so the log would end on whatever it printed before."""
    tail = log_tail(folder / "fit.log")
    if returncode is None or returncode >= 0:
        return tail
    name = signal.Signals(-returncode).name if -returncode in signal.valid_signals() else f"signal {-returncode}"
    why = "out of memory, or kill -9"
    return f"{tail}\nthe fit was killed by {name} ({why}); --retry_failed resumes it from its checkpoint"


def run_one(run: Run, grid: Grid, runs_dir: Path, threads: int | None = None) -> dict[str, Any]:
    """Train and evaluate one cell; the outcome (ok or failed, never dropped) goes to result.json.
    A fit stopped by a signal is no outcome: the cell has no result.json (a former failure's is
    removed), so the next run resumes it from its checkpoint."""
    folder = run.folder(runs_dir)
    result: dict[str, Any] = {"variant": run.variant.name, "dataset": run.dataset.name, "seed": run.seed}
    result.update(train(run, grid, folder, threads))
    if interrupted_exit(result["returncode"]):
        (folder / RESULT_FILE).unlink(missing_ok=True)
        return {**result, "status": "interrupted"}
    if result["returncode"] != 0 or not (folder / LAST_CHECKPOINT).is_file():
        result.update(status="failed", error=failure(result["returncode"], folder))
    else:
        result = scored(result, run, grid, folder)
    write_json(folder / RESULT_FILE, result)
    return result


def scored(fitted: dict[str, Any], run: Run, grid: Grid, folder: Path) -> dict[str, Any]:
    """The fit record `fitted` with the evaluation of its final checkpoint under the grid's current
    options: status ok and the metrics, or status failed and the evaluation's error."""
    code, payload, output = evaluate(folder, {**grid.evaluate, **run.dataset.evaluate})
    if code != 0:
        return {**fitted, "status": "failed", "error": "evaluate: " + output.strip()[-500:]}
    protocol = payload.pop("protocol", {})
    payload.pop("ckpt_path", None)
    return {**fitted, "status": "ok", **payload, "protocol": protocol}


def reevaluate(run: Run, grid: Grid, runs_dir: Path, done: dict[str, Any]) -> dict[str, Any]:
    """Score a finished cell's final checkpoint again (a metric or an evaluator added since), keeping
    its fit record; result.json is replaced only by a successful evaluation, so a failing one loses
    nothing."""
    fitted = {k: done[k] for k in FIT_KEYS if k in done}
    result = scored(fitted, run, grid, run.folder(runs_dir))
    if result["status"] == "ok":
        write_json(run.folder(runs_dir) / RESULT_FILE, result)
    return result


def load_result(run: Run, runs_dir: Path) -> dict[str, Any] | None:
    path = run.folder(runs_dir) / RESULT_FILE
    return json.loads(path.read_text()) if path.is_file() else None


@dataclass
class BenchTask:
    """The queue task of `gan-lab bench`: one Optuna study whose trials are the grid's cells (fixed
    points: variant, dataset, seed); each cell's result.json stays the bench's record."""

    grid: Grid
    runs_dir: Path
    threads: int | None = None
    say: Callable[[str], None] = print
    heartbeat_s: float = 60.0

    def names(self) -> list[str]:
        return [self.grid.name]

    def space(self, name: str) -> dict[str, BaseDistribution]:
        return {
            "variant": CategoricalDistribution([v.name for v in self.grid.variants]),
            "dataset": CategoricalDistribution([d.name for d in self.grid.datasets]),
            "seed": CategoricalDistribution(self.grid.seeds),
        }

    def sampler(self, worker: int) -> optuna.samplers.BaseSampler:
        return optuna.samplers.RandomSampler(seed=worker)  # every value is fixed when enqueued

    def execute(self, name: str, index: int, seed: int, params: dict[str, Any]) -> Outcome:
        variant = next(v for v in self.grid.variants if v.name == params["variant"])
        dataset = next(d for d in self.grid.datasets if d.name == params["dataset"])
        result = run_one(Run(variant, dataset, seed), self.grid, self.runs_dir, self.threads)
        interrupted = result["status"] == "interrupted"
        brief = ", ".join(
            f"{k} {result[k]:.4g}" for k in ("modes", "hq_pct", "reverse_kl", "emd", "fid") if k in result
        )
        self.say(
            f"[{index + 1}/{len(self.grid.runs())}] {variant.name} / {dataset.name} / seed {seed}: "
            f"{result['status']} in {result['fit_wall_s']:.0f} s ({result['fit_cpu_s']:.0f} s CPU) "
            + ("(the next run resumes it)" if interrupted else brief)
        )
        reason = None if result["status"] == "ok" else str(result.get("error", ""))[-300:] or result["status"]
        return Outcome(result["fit_wall_s"], {"status": result["status"]}, reason, interrupted)


def check_cells(grid: Grid) -> None:
    """Parse every variant x dataset command of the grid (`gan-lab fit ... --print_config`, which
    trains and writes nothing) before the first fit, so a misspelled argument of the last variant
    fails the bench in one line at once instead of after hours of other cells."""
    import tempfile

    from gan_modules.cli import main

    seed = grid.seeds[0]
    with tempfile.TemporaryDirectory() as tmp:
        for variant in grid.variants:
            for dataset in grid.datasets:
                run = Run(variant, dataset, seed)
                overrides = Path(tmp) / OVERRIDES_FILE
                overrides.write_text(yaml.safe_dump(run_overrides(run, grid, Path(tmp) / "run"), sort_keys=False))
                err = io.StringIO()
                with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(err):
                    try:
                        code = main([*fit_args(run, grid, overrides), "--print_config"])
                    except SystemExit as exit_:
                        code = int(exit_.code or 0)
                if code == 128 + signal.SIGINT:  # Ctrl-C while parsing: a stop, not a bad argument
                    raise KeyboardInterrupt
                if code != 0:
                    lines = err.getvalue().strip().splitlines() or [f"exit status {code}"]
                    message = lines[-1].removeprefix("gan-lab: error: ")
                    raise ValueError(f"variants.{variant.name} on {dataset.name}: {message}")


def run_grid(
    grid: Grid,
    runs_dir: Path,
    threads: int | None = None,
    retry_failed: bool = False,
    say: Callable[[str], None] = print,
    workers: int = 1,
    reevaluate_finished: bool = False,
) -> list[dict[str, Any]]:
    """Every cell of the grid, training only those without a result (or failed ones, if asked),
    through the study queue (`<runs_dir>/bench.db`, rebuilt each time: result.json is the record);
    `reevaluate_finished` scores the finished cells' final checkpoints again, here, one by one."""
    runs = grid.runs()
    todo = []
    for i, run in enumerate(runs):
        done = load_result(run, runs_dir)
        if done is not None and done["status"] == "ok" and reevaluate_finished:
            again = reevaluate(run, grid, runs_dir, done)
            kept = "" if again["status"] == "ok" else f", its former result kept: {again['error']}"
            say(f"[{i + 1}/{len(runs)}] {run.variant.name} / {run.dataset.name} / seed {run.seed}: "
                f"evaluated again ({again['status']}{kept})")  # fmt: skip
            continue
        if done is not None and (done["status"] == "ok" or not retry_failed):
            say(f"[{i + 1}/{len(runs)}] {run.variant.name} / {run.dataset.name} / seed {run.seed}: "
                f"done before ({done['status']}), skipped")  # fmt: skip
            continue
        params = {"variant": run.variant.name, "dataset": run.dataset.name, "seed": run.seed}
        todo.append({"index": i, "seed": run.seed, "params": params})
    if todo:
        run_fixed_points(BenchTask(grid, runs_dir, threads, say), runs_dir / "bench.db", todo, workers)
    return [r for r in (load_result(run, runs_dir) for run in runs) if r is not None]


def run_fixed_points(task: Task, db: Path, points: list[dict[str, Any]], workers: int) -> None:
    """Run `points` (each {index, seed, params}) of a one-study task, `workers` at a time, through
    the study queue in a fresh SQLite study at `db` (rebuilt each time: the runs' result.json files
    are the record, so a rerun only enqueues what has none)."""
    db.parent.mkdir(parents=True, exist_ok=True)
    (name,) = task.names()
    url = f"sqlite:///{db.resolve()}"
    store = storage(url, task.heartbeat_s)
    if name in optuna.get_all_study_names(store):
        optuna.delete_study(study_name=name, storage=store)
    enqueue(optuna.create_study(study_name=name, storage=store), points)
    launch(task, url, workers)
