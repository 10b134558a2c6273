"""A study file, read and checked in full before any fit starts.

A study file looks like::

    name: toy2d
    sampler: {name: random, seed: 0}      # random (Lucic et al. 2018) | tpe | grid (every combination)
    trials: 20                             # per objective (random/tpe); a grid runs each point `seeds` times
    metrics: {reverse_kl: minimize, hq_pct: maximize}   # the first one is the trial's Optuna value
    max_steps: 2000                        # optional: every fit's trainer.max_steps
    timeout_s: 900                         # optional: a fit running longer is stopped and failed
    fit_args: [--trainer.logger=false]     # appended to every fit
    evaluate: {num: 2500, num_real: 2500, seed: 0}   # `gan-lab evaluate` of each final checkpoint
    curves: {every_n_steps: 500}           # optional: metrics at fixed points along each fit
    space:                                 # shared by every objective (see gan_modules.studies.space)
      model.init_args.lr_d: {type: log_uniform, low: 1.0e-5, high: 1.0e-2}
    objectives:
      wgan_gp: {config: [configs/bench/toy_base.yaml, configs/bench/toy_wgan_gp.yaml],
                args: [--data.init_args.dataset=ring8],
                space: {model.init_args.gp_weight: {type: log_uniform, low: 0.1, high: 1000}}}

An objective is any composition of fit arguments: config files (`config`) and/or arguments (`args`,
e.g. `--model.init_args.loss=hinge`); its `space` entries are added to the shared ones.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from optuna.distributions import BaseDistribution

from gan_modules.bench.grid import EVALUATE_KEYS, read_mapping, str_list
from gan_modules.studies.space import grid_points, parse_space, random_points

STUDY_KEYS = (
    "name",
    "sampler",
    "trials",
    "seeds",
    "metrics",
    "max_steps",
    "timeout_s",
    "fit_args",
    "evaluate",
    "curves",
    "space",
    "objectives",
    "wandb",
    "heartbeat_s",
)
OBJECTIVE_KEYS = ("config", "args", "space")
SAMPLERS = ("random", "tpe", "grid")
DIRECTIONS = ("minimize", "maximize")


def _fail(key: str, value: Any, allowed: str) -> None:
    raise ValueError(f"study.{key}={value!r} is invalid; allowed: {allowed}")


def _str_list(key: str, value: Any) -> tuple[str, ...]:
    return str_list(key, value, "study")


def _positive_int(key: str, value: Any) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        _fail(key, value, "an integer >= 1")
    return value


@dataclass(frozen=True)
class Objective:
    """One thing compared: the fit arguments that make it and the space searched for it."""

    name: str
    configs: tuple[Path, ...]
    args: tuple[str, ...]
    space: dict[str, BaseDistribution]


@dataclass
class Study:
    name: str
    objectives: list[Objective]
    metrics: dict[str, str]
    sampler: str = "random"
    sampler_seed: int = 0
    trials: int = 20
    seeds: int = 1
    max_steps: int | None = None
    timeout_s: float | None = None
    fit_args: list[str] = field(default_factory=list)
    evaluate: dict[str, Any] = field(default_factory=dict)
    curves: dict[str, Any] | None = None
    wandb: bool = False
    heartbeat_s: float = 60.0

    @property
    def metric(self) -> str:
        """The metric a trial reports to Optuna (the first of `metrics`)."""
        return next(iter(self.metrics))

    @property
    def direction(self) -> str:
        return self.metrics[self.metric]

    def points(self, objective: Objective) -> list[dict[str, Any]]:
        """The study's trials of one objective, in index order: {"index", "seed", "params"}.
        Random: `trials` draws, trial i with seed i. Grid: every point x seeds 0..seeds-1, seed-major
        (a partial grid already has every cell at the first seeds). TPE: no params fixed in advance;
        the sampler picks them from the trials finished when a trial starts."""
        if self.sampler == "grid":
            cells = grid_points(objective.space)
            return [
                {"index": s * len(cells) + j, "seed": s, "params": cell}
                for s in range(self.seeds)
                for j, cell in enumerate(cells)
            ]
        if self.sampler == "random":
            drawn = random_points(objective.space, self.trials, self.sampler_seed)
            return [{"index": i, "seed": i, "params": p} for i, p in enumerate(drawn)]
        return [{"index": i, "seed": i, "params": {}} for i in range(self.trials)]


def _objective(name: str, spec: Any, base: Path, shared: dict[str, BaseDistribution]) -> Objective:
    where = f"objectives.{name}"
    if not isinstance(spec, dict) or not ({"config", "args"} & set(spec)):
        _fail(where, spec, "{config: [fit config files], args: [fit arguments], space: {...}}")
    for key in spec:
        if key not in OBJECTIVE_KEYS:
            _fail(f"{where}.{key}", spec[key], "keys " + ", ".join(OBJECTIVE_KEYS))
    given = spec.get("config") or []
    configs = []
    for entry in given if isinstance(given, list) else [given]:
        path = Path(str(entry))
        path = path if path.is_absolute() else base / path
        if not path.is_file():
            _fail(f"{where}.config", entry, "existing fit config files")
        configs.append(path)
    space = {**shared, **parse_space(spec.get("space"), f"{where}.space")}
    return Objective(name, tuple(configs), _str_list(f"{where}.args", spec.get("args")), space)


def _sampler(value: Any) -> tuple[str, int]:
    spec = {"name": value} if isinstance(value, str) else value
    if not isinstance(spec, dict) or spec.get("name") not in SAMPLERS or set(spec) - {"name", "seed"}:
        _fail("sampler", value, "{name: " + " | ".join(SAMPLERS) + ", seed: <int>}")
    seed = spec.get("seed", 0)
    if not isinstance(seed, int) or isinstance(seed, bool):
        _fail("sampler.seed", seed, "an integer")
    return spec["name"], seed


def _mapping(key: str, value: Any, allowed: tuple[str, ...] | None = None) -> dict[str, Any]:
    value = value or {}
    if not isinstance(value, dict):
        _fail(key, value, "a mapping")
    for option in value:
        if allowed is not None and option not in allowed:
            _fail(f"{key}.{option}", value[option], "keys " + ", ".join(allowed))
    return dict(value)


def load_study(path: str | Path, base: Path | None = None) -> Study:
    """Read and validate a study file; relative config paths are taken from `base` (default: cwd)."""
    raw = read_mapping(path, STUDY_KEYS, "study")
    if not isinstance(raw.get("objectives"), dict) or not raw["objectives"]:
        _fail("objectives", raw.get("objectives"), "a non-empty mapping of name -> {config, args, space}")
    metrics = raw.get("metrics")
    if not isinstance(metrics, dict) or not metrics or any(d not in DIRECTIONS for d in metrics.values()):
        _fail("metrics", metrics, "a non-empty mapping of metric -> minimize | maximize")
    sampler, sampler_seed = _sampler(raw.get("sampler", "random"))
    shared = parse_space(raw.get("space"))
    base = base or Path.cwd()
    objectives = [_objective(str(n), s, base, shared) for n, s in raw["objectives"].items()]
    for objective in objectives:
        if not objective.space:
            _fail(f"objectives.{objective.name}.space", {}, "at least one entry (shared `space` or the objective's)")
    study = Study(
        name=str(raw.get("name") or Path(path).stem),
        objectives=objectives,
        metrics={str(k): v for k, v in metrics.items()},
        sampler=sampler,
        sampler_seed=sampler_seed,
        trials=_positive_int("trials", raw.get("trials", 20)),
        seeds=_positive_int("seeds", raw.get("seeds", 1)),
        fit_args=list(_str_list("fit_args", raw.get("fit_args"))),
        evaluate=_mapping("evaluate", raw.get("evaluate"), EVALUATE_KEYS),
        curves=None if raw.get("curves") is None else _mapping("curves", raw["curves"]),
        wandb=bool(raw.get("wandb", False)),
    )
    for key in ("max_steps",):
        if raw.get(key) is not None:
            study.max_steps = _positive_int(key, raw[key])
    for key in ("timeout_s", "heartbeat_s"):
        value = raw.get(key)
        if value is not None:
            if not isinstance(value, int | float) or isinstance(value, bool) or value <= 0:
                _fail(key, value, "a number of seconds > 0")
            setattr(study, key, float(value))
    if sampler == "grid":
        for objective in objectives:
            study.points(objective)  # a grid of non-categorical entries fails here, in one line
    return study
