"""One trial of a study: a normal `gan-lab fit` in its own folder, then `gan-lab evaluate` of its
final checkpoint (as a bench cell; Lucic et al. 2018 report the final model, not the best step)."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from string import Template
from typing import Any

import optuna
import yaml
from optuna.distributions import BaseDistribution

from gan_modules.bench.runner import LAST_CHECKPOINT, OVERRIDES_FILE, RESULT_FILE, curve_args, evaluate, fit, log_tail
from gan_modules.paths import write_json
from gan_modules.studies.config import Objective, Study
from gan_modules.studies.runner import Outcome, interrupted_exit
from gan_modules.studies.space import arg_value, fit_arguments

NONFINITE_EXIT = 3  # `gan-lab fit` stopped at a non-finite loss (gan_modules.cli.main)


def study_name(study: Study, objective: str) -> str:
    """The Optuna study of one objective (many objectives share one storage)."""
    return f"{study.name}/{objective}"


def trial_folder(out: Path, objective: str, index: int) -> Path:
    return out / "trials" / objective / f"{index:03d}"


def trial_fit_args(
    study: Study, objective: Objective, index: int, seed: int, params: dict[str, Any], folder: Path
) -> list[str]:
    """`gan-lab fit` of one trial: the objective's configs, the trial's folder and seed, the shared
    and the objective's arguments, then the sampled values (later arguments win)."""
    overrides: dict[str, Any] = {
        "seed_everything": seed,
        "trainer": {"default_root_dir": str(folder), "enable_progress_bar": False},
        "model": {"init_args": {"seed": seed}},
    }
    if study.max_steps is not None:
        overrides["trainer"]["max_steps"] = study.max_steps
    path = folder / OVERRIDES_FILE
    path.write_text(yaml.safe_dump(overrides, sort_keys=False))
    args = ["fit", *[a for c in objective.configs for a in ("--config", str(c))], "--config", str(path)]
    variables = {k: arg_value(v) for k, v in params.items() if "." not in k}  # `${name}` in an objective's args
    keys = {k: v for k, v in params.items() if "." in k}
    objective_args = [Template(a).substitute(variables) for a in objective.args]
    args += [*study.fit_args, *objective_args, *fit_arguments(keys), f"--data.init_args.seed={seed}"]
    if study.curves is not None:
        args += curve_args(study.curves)
    if study.wandb:  # one W&B group per study; tags find an objective's trials (gan_modules.loggers)
        args += [
            f"--trainer.logger.init_args.group={study.name}",
            f"--trainer.logger.init_args.tags={json.dumps([objective.name, f'trial-{index}'])}",
        ]
    return args


def failure(returncode: int | None, timeout_s: float | None, log: Path) -> str:
    """The one-line reason a fit failed, as reports show it."""
    if returncode is None:
        return f"time-out after {timeout_s:g} s"
    if returncode == NONFINITE_EXIT:
        return "non-finite loss (gan-lab fit exit 3)"
    return f"error (gan-lab fit exit {returncode}): " + " | ".join(log_tail(log, 3).splitlines())[-400:]


@dataclass
class StudyTask:
    """The queue task of `gan-lab study`: objective studies, their spaces, trial fits under `out`."""

    study: Study
    out: Path
    threads: int | None = 1

    @property
    def heartbeat_s(self) -> float:
        return self.study.heartbeat_s

    def names(self) -> list[str]:
        return [study_name(self.study, o.name) for o in self.study.objectives]

    def objective(self, name: str) -> Objective:
        return next(o for o in self.study.objectives if study_name(self.study, o.name) == name)

    def space(self, name: str) -> dict[str, BaseDistribution]:
        return self.objective(name).space

    def sampler(self, worker: int) -> optuna.samplers.BaseSampler:
        seed = self.study.sampler_seed + worker  # workers must not draw the same TPE candidates
        if self.study.sampler == "tpe":
            return optuna.samplers.TPESampler(seed=seed)
        return optuna.samplers.RandomSampler(seed=seed)  # every value is fixed when enqueued

    def execute(self, name: str, index: int, seed: int, params: dict[str, Any]) -> Outcome:
        objective = self.objective(name)
        folder = trial_folder(self.out, objective.name, index)
        folder.mkdir(parents=True, exist_ok=True)
        args = trial_fit_args(self.study, objective, index, seed, params, folder)
        run = fit(folder, args, self.threads, self.study.timeout_s)
        attrs: dict[str, Any] = {k: run[k] for k in ("fit_wall_s", "fit_cpu_s", "command")}
        attrs["folder"] = str(folder)
        reason = None
        value = None
        if interrupted_exit(run["returncode"]):  # no record: the trial's retry resumes the fit
            return Outcome(None, attrs, f"interrupted (gan-lab fit exit {run['returncode']})", interrupted=True)
        if run["returncode"] != 0 or not (folder / LAST_CHECKPOINT).is_file():
            reason = failure(run["returncode"], self.study.timeout_s, folder / "fit.log")
        else:
            code, payload, output = evaluate(folder, self.study.evaluate)
            metrics = {k: v for k, v in payload.items() if isinstance(v, int | float) and not isinstance(v, bool)}
            attrs["metrics"] = metrics
            attrs["protocol"] = payload.get("protocol", {})
            if code != 0:
                reason = "evaluate: " + output.strip()[-300:]
            elif self.study.metric not in metrics or math.isnan(metrics[self.study.metric]):
                reason = f"evaluate gave no {self.study.metric} (got {', '.join(sorted(metrics))})"
            else:
                value = float(metrics[self.study.metric])
        write_json(folder / RESULT_FILE, {**attrs, "params": params, "fail_reason": reason})
        return Outcome(value, attrs, reason)
