"""Every shipped config trains: each one is a real `gan-lab fit` for a short fixed budget, scored
before (the untrained generator, step 0) and after on its data's metric, side by side.

A shipped config is a promise that it trains; the variant tests train their own tiny settings, not
the configs users run. Each config is given as a name and its `gan-lab fit` arguments, so the same
bench runs every preset on every CPU data set (`discover_configs` is the one place that knows the layout).
The metric comes from the checkpoint's data: the exact EMD for 2D points, classifier FID (the
digit classifier of `gan-lab train-evaluator`) for digit images; lower is nearer the data, and a
config passes when training moved it nearer. Both scores are `gan-lab evaluate` runs of the same
protocol, and the untrained generator is the run's own initialisation, saved by `InitialCheckpoint`.
"""

from __future__ import annotations

import importlib
import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import lightning as L
import optuna
import yaml
from optuna.distributions import BaseDistribution, CategoricalDistribution

from gan_modules.bench.aggregate import generated_line, write_csv
from gan_modules.bench.runner import RESULT_FILE, evaluate, log_tail, run_fixed_points
from gan_modules.checkpoints import load_datamodule
from gan_modules.paths import write_json
from gan_modules.studies.runner import Outcome, interrupted_exit

# Datasets whose configs train on a CPU in minutes: the 2D mixtures and the digit images.
CPU_DATASETS = ("ring8", "grid25", "swissroll", "digits", "mnist")
INITIAL_CHECKPOINT = Path("checkpoints") / "step0.ckpt"
FINAL_CHECKPOINT = Path("checkpoints") / "last.ckpt"
CSV_LOGGER = {"class_path": "gan_modules.loggers.CSVRunLogger", "init_args": {"save_dir": ".", "name": "logs"}}
# The metric per data kind and the `gan-lab evaluate` options that compute it (2,000 images: the
# same count before and after keeps FID's sample-size bias out of the comparison).
METRICS: dict[str, tuple[str, dict[str, Any]]] = {
    "points": ("emd", {"metrics": "modes,emd", "seed": 0}),
    "image": ("fid", {"metrics": "fid", "num": 2000, "num_real": 2000, "batch_size": 500, "seed": 0}),
}
# A config that ends above this fraction of its untrained score moved towards the data, but barely.
BARELY = 0.9
TABLE_FILE, CSV_FILE = "results.md", "shipped.csv"  # results.md: the name every results folder uses


@dataclass(frozen=True)
class ShippedConfig:
    """One config as a user runs it: a table name (also its run folder) and its `gan-lab fit` arguments."""

    name: str
    fit_args: tuple[str, ...]

    def __post_init__(self) -> None:
        path = Path(self.name)
        if not self.name or path.is_absolute() or ".." in path.parts:
            raise ValueError(f"config name {self.name!r} is invalid; allowed: a relative path without '..'")


def _init_args(path: Path) -> dict[str, Any]:
    return (yaml.safe_load(path.read_text()) or {}).get("init_args") or {}


def data_classes(path: Path) -> int:
    """The number of classes of a `--data` file's datamodule (0: no labels), from the datamodule itself."""
    spec = yaml.safe_load(path.read_text())
    module, _, name = spec["class_path"].rpartition(".")
    return getattr(getattr(importlib.import_module(module), name)(**spec.get("init_args", {})), "num_classes", 0)


def trains_on(model: Path, data: Path) -> bool:
    """Whether the preset can train on the data: a conditional preset needs the data's labels."""
    wanted = _init_args(model).get("num_classes", 0)
    if not wanted:
        return True
    classes = data_classes(data)
    return classes > 0 if wanted == "data" else classes == wanted


def discover_configs(root: str | Path = "configs") -> list[ShippedConfig]:
    """Every preset (`<root>/model/*.yaml`) on every CPU data set (`<root>/data/<name>.yaml` for
    `CPU_DATASETS`) it can train on (a conditional preset: the labelled ones), as `--model <file>
    --data <file>`: the composition `gan-lab fit --model P --data D` trains, family and experiment
    files included."""
    root = Path(root)
    if not (root / "model").is_dir() or not (root / "data").is_dir():
        raise FileNotFoundError(f"configs folder {str(root)!r} has no model/ and data/ folders")
    data = {name: root / "data" / f"{name}.yaml" for name in CPU_DATASETS if (root / "data" / f"{name}.yaml").is_file()}
    return [
        ShippedConfig(f"{model.stem}/{name}", ("--model", str(model), "--data", str(path)))
        for model in sorted((root / "model").glob("*.yaml"))
        for name, path in data.items()
        if trains_on(model, path)
    ]


class InitialCheckpoint(L.Callback):
    """Saves the untrained model to `<root>/checkpoints/step0.ckpt` before the first step of a fresh
    run: the initialisation this very run starts from, scored as the "before" of the bench."""

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if trainer.global_step == 0:
            trainer.save_checkpoint(Path(trainer.default_root_dir) / INITIAL_CHECKPOINT)


def fit_command(config: ShippedConfig, folder: Path, max_steps: int, extra_args: Sequence[str] = ()) -> list[str]:
    """`gan-lab fit` arguments: the config's own, then the bench's budget, folder and CSV-only logging."""
    return [
        "fit",
        *config.fit_args,
        *extra_args,
        f"--trainer.max_steps={max_steps}",
        f"--trainer.default_root_dir={folder}",
        f"--trainer.logger={json.dumps(CSV_LOGGER)}",
        "--trainer.enable_progress_bar=false",
        f"--trainer.callbacks+={__name__}.InitialCheckpoint",
    ]


def score_options(checkpoint: Path) -> tuple[str, dict[str, Any]]:
    """The metric for the checkpoint's data kind, and its `gan-lab evaluate` options."""
    dm = load_datamodule(checkpoint)
    if dm.kind not in METRICS:
        raise ValueError(f"data kind {dm.kind!r} has no shipped-config metric; allowed: {', '.join(METRICS)}")
    metric, options = METRICS[dm.kind]
    if dm.kind == "image":
        options = {**options, "extractor": f"{dm.name}-classifier"}
    return metric, options


def run_config(
    config: ShippedConfig,
    runs_dir: Path,
    max_steps: int,
    extra_args: Sequence[str] = (),
    threads: int | None = None,
) -> dict[str, Any]:
    """Train one config from scratch in a fresh `gan-lab fit` process, score steps 0 and `max_steps`;
    the outcome (ok or failed, never dropped) goes to `<runs_dir>/<name>/result.json`."""
    folder = runs_dir / config.name
    if folder.exists():
        shutil.rmtree(folder)  # `gan-lab fit` would resume an earlier run's last.ckpt: start from step 0
    folder.mkdir(parents=True)
    args = fit_command(config, folder, max_steps, extra_args)
    env = dict(os.environ)
    if threads is not None:
        env.update(OMP_NUM_THREADS=str(threads), MKL_NUM_THREADS=str(threads))
    start = time.perf_counter()
    with (folder / "fit.log").open("w") as log:
        code = subprocess.run(
            [sys.executable, "-m", "gan_modules.cli", *args], stdout=log, stderr=subprocess.STDOUT, env=env
        ).returncode
    result: dict[str, Any] = {
        "config": config.name,
        "max_steps": max_steps,
        "fit_wall_s": round(time.perf_counter() - start, 1),
        "command": "gan-lab " + " ".join(args),
    }
    final = folder / FINAL_CHECKPOINT
    if interrupted_exit(code):  # no record: the next run fits this config again
        return {**result, "status": "interrupted", "error": "interrupted (the next run fits it again)"}
    if code != 0 or not final.is_file() or not (folder / INITIAL_CHECKPOINT).is_file():
        result.update(status="failed", error=f"gan-lab fit exited {code}: {log_tail(folder / 'fit.log')}")
    else:
        metric, options = score_options(final)
        result.update(metric=metric)
        for when, checkpoint in (("before", INITIAL_CHECKPOINT), ("after", FINAL_CHECKPOINT)):
            code, payload, output = evaluate(folder, options, checkpoint, f"evaluate_{when}.json")
            if code != 0:
                result.update(status="failed", error=f"gan-lab evaluate ({when}): {output.strip()[-300:]}")
                break
            result.update({f"{when}_{k}": v for k, v in payload.items() if isinstance(v, (int, float))})
        else:
            result.update(status="ok", towards_data=result[f"after_{metric}"] < result[f"before_{metric}"])
    write_json(folder / RESULT_FILE, result)
    return result


@dataclass
class ShippedTask:
    """The queue task of `gan-lab shipped` (the runner `gan-lab bench` and `gan-lab study` use): one
    Optuna study whose trials are the configs, each a fixed point; result.json stays the record."""

    configs: tuple[ShippedConfig, ...]
    runs_dir: Path
    max_steps: int
    extra_args: tuple[str, ...] = ()
    threads: int | None = None
    say: Callable[[str], None] = print
    heartbeat_s: float = 60.0
    name: str = "shipped"

    def names(self) -> list[str]:
        return [self.name]

    def space(self, name: str) -> dict[str, BaseDistribution]:
        return {"config": CategoricalDistribution([c.name for c in self.configs])}

    def sampler(self, worker: int) -> optuna.samplers.BaseSampler:
        return optuna.samplers.RandomSampler(seed=worker)  # every value is fixed when enqueued

    def execute(self, name: str, index: int, seed: int, params: dict[str, Any]) -> Outcome:
        config = next(c for c in self.configs if c.name == params["config"])
        result = run_config(config, self.runs_dir, self.max_steps, self.extra_args, self.threads)
        self.say(f"[{index + 1}/{len(self.configs)}] {config.name}: {_verdict(result)} in {result['fit_wall_s']:.0f} s")
        reason = None if result["status"] == "ok" else result["error"][-300:]
        return Outcome(result["fit_wall_s"], {"status": result["status"]}, reason, result["status"] == "interrupted")


def _done(config: ShippedConfig, runs_dir: Path, max_steps: int) -> dict[str, Any] | None:
    path = runs_dir / config.name / RESULT_FILE
    done = json.loads(path.read_text()) if path.is_file() else None
    return done if done is not None and done.get("max_steps") == max_steps else None


def run_configs(
    configs: Sequence[ShippedConfig],
    runs_dir: Path,
    max_steps: int,
    extra_args: Sequence[str] = (),
    threads: int | None = None,
    say: Callable[[str], None] = print,
    workers: int = 1,
) -> list[dict[str, Any]]:
    """Each config without a result at this budget, `workers` at a time through the study queue
    (`<runs_dir>/shipped.db`, rebuilt each time: result.json is the record)."""
    todo = []
    for i, config in enumerate(configs):
        if _done(config, runs_dir, max_steps) is not None:
            say(f"[{i + 1}/{len(configs)}] {config.name}: done before, skipped")
        else:
            todo.append({"index": i, "seed": 0, "params": {"config": config.name}})
    if todo:
        task = ShippedTask(tuple(configs), runs_dir, max_steps, tuple(extra_args), threads, say)
        run_fixed_points(task, runs_dir / "shipped.db", todo, workers)
    return [r for r in (_done(c, runs_dir, max_steps) for c in configs) if r is not None]


def _direction(result: dict[str, Any]) -> str:
    """How far training moved the metric: "yes", "barely" (less than 10% nearer than untrained) or "no"."""
    metric = result["metric"]
    if not result["towards_data"]:
        return "no"
    return "barely" if result[f"after_{metric}"] > BARELY * result[f"before_{metric}"] else "yes"


def _verdict(result: dict[str, Any]) -> str:
    if result["status"] == "interrupted":
        return result["error"]
    if result["status"] != "ok":
        return f"failed ({result['error'].splitlines()[0][:120]})"
    metric = result["metric"]
    moved = {"yes": "towards the data", "barely": "barely towards the data", "no": "AWAY from the data"}
    return f"{metric} {result[f'before_{metric}']:.4g} -> {result[f'after_{metric}']:.4g}, {moved[_direction(result)]}"


def _row(cells: Sequence[str]) -> str:
    return "|" + "|".join(f" {c} " if c else " " for c in cells) + "|"


def markdown_table(results: Sequence[dict[str, Any]]) -> str:
    """One row per config: metric of the untrained and the trained generator, and the verdict."""
    lines = [
        "| config | metric | untrained (step 0) | trained | towards the data | modes (trained) | fit s |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in results:
        if r["status"] != "ok":
            error = r["error"].splitlines()[0][:80].replace("|", "/")
            lines.append(_row([r["config"], "", "", "", f"**failed**: {error}", "", f"{r['fit_wall_s']:.0f}"]))
            continue
        m = r["metric"]
        verdict = {"yes": "yes", "barely": "barely", "no": "**no**"}[_direction(r)]
        modes = f"{r['after_modes']:.0f}" if "after_modes" in r else ""
        scores = [f"{r[f'before_{m}']:.3f}", f"{r[f'after_{m}']:.3f}"]
        lines.append(_row([r["config"], m, *scores, verdict, modes, f"{r['fit_wall_s']:.0f}"]))
    return "\n".join(lines) + "\n"


def write_report(
    results: Sequence[dict[str, Any]], out: Path, command: str, workers: int = 1, threads: int | None = None
) -> list[Path]:
    """`results.md` (the command, the budget, the table) and `shipped.csv` (every score) in `out`."""
    out.mkdir(parents=True, exist_ok=True)
    steps = sorted({r["max_steps"] for r in results})
    failed = [r["config"] for r in results if r["status"] != "ok" or not r["towards_data"]]
    barely = [r["config"] for r in results if r["status"] == "ok" and _direction(r) == "barely"]
    header = [
        "# Shipped configs: untrained vs trained",
        "",
        f"`{command}`",
        "",
        f"{len(results)} configs, {'/'.join(map(str, steps))} generator iterations each; the fits took "
        f"{sum(r['fit_wall_s'] for r in results) / 60:.1f} min of wall time together. EMD: exact, 2,500 generated "
        "vs 2,500 real points; FID: in the features of the data's classifier (`gan-lab train-evaluator`), 2,000 "
        "generated vs up to 2,000 real images. Lower is nearer the data.",
        "",
        generated_line(f"{workers} `gan-lab fit` process(es) at a time, {threads or 'default'} thread(s) each"),
        "",
        f"Not towards the data (or failed): {', '.join(failed) if failed else 'none'}.",
        "",
        f"Less than {1 - BARELY:.0%} nearer the data than untrained: {', '.join(barely) if barely else 'none'}.",
        "",
    ]
    table = out / TABLE_FILE
    table.write_text("\n".join([*header, ""]) + markdown_table(results))
    columns = ["config", "status", "metric", "max_steps", "towards_data", "fit_wall_s"]
    columns += [*sorted({k for r in results for k in r if k.startswith(("before_", "after_"))}), "error", "command"]
    return [table, write_csv(out / CSV_FILE, results, columns)]
