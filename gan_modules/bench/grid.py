"""The benchmark grid: variants x datasets x seeds, read from one YAML file and checked up front.

A grid file looks like::

    name: toy
    seeds: 10                      # or an explicit list, e.g. [0, 1, 2]
    max_steps: 2000                # optional: overrides every config's trainer.max_steps
    fit_args: [--trainer.logger=false]     # optional: appended to every `gan-lab fit`
    curves: {every_n_steps: 250}   # GenerativeMetrics options for the metric-vs-iteration curves
    evaluate: {num: 2500, num_real: 2500, seed: 0}   # `gan-lab evaluate` of each final checkpoint
    datasets:
      ring8: {data: {class_path: datamodules.Toy2DDataModule, init_args: {dataset: ring8}}}
      digits: {data: {...}, curves: {extractor: digits-classifier}, evaluate: {extractor: digits-classifier}}
    variants:
      wgan_gp: configs/bench/toy_wgan_gp.yaml          # a fit config ...
      sngan: {config: [configs/bench/toy_base.yaml, configs/bench/toy_sngan.yaml],  # ... or several
              args: [...], datasets: {grid25: [...]}}

Every run is `gan-lab fit --config <variant config(s)> --config <run overrides> <args>`; later
configs win, and a model `class_path` given later keeps the earlier `init_args` it accepts, so a
shared base plus one small file per variant works. The overrides set the dataset (merged over the
config's `data`, so a config's batch size survives) and the seed.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

GRID_KEYS = ("name", "seeds", "max_steps", "fit_args", "curves", "evaluate", "datasets", "variants")
EVALUATE_KEYS = ("num", "num_real", "seed", "extractor", "weights_path", "metrics", "batch_size", "cache_dir")


@dataclass(frozen=True)
class Variant:
    name: str
    configs: tuple[Path, ...]
    args: tuple[str, ...] = ()
    dataset_args: dict[str, tuple[str, ...]] = field(default_factory=dict)


@dataclass(frozen=True)
class Dataset:
    """`curves` / `evaluate` entries here are merged over the grid's (e.g. a per-dataset extractor)."""

    name: str
    data: dict[str, Any]
    args: tuple[str, ...] = ()
    curves: dict[str, Any] = field(default_factory=dict)
    evaluate: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Run:
    """One cell of the grid: a variant trained on a dataset with one seed."""

    variant: Variant
    dataset: Dataset
    seed: int

    def folder(self, runs_dir: Path) -> Path:
        return runs_dir / self.variant.name / self.dataset.name / f"seed{self.seed}"


@dataclass
class Grid:
    name: str
    seeds: list[int]
    variants: list[Variant]
    datasets: list[Dataset]
    max_steps: int | None = None
    fit_args: list[str] = field(default_factory=list)
    curves: dict[str, Any] | None = None
    evaluate: dict[str, Any] = field(default_factory=dict)

    def runs(self) -> list[Run]:
        """Seed-major order: a partial bench already has every cell at the first seeds."""
        return [Run(v, d, s) for s in self.seeds for d in self.datasets for v in self.variants]


def _fail(key: str, value: Any, allowed: str) -> None:
    raise ValueError(f"bench.{key}={value!r} is invalid; allowed: {allowed}")


def str_list(key: str, value: Any, kind: str = "bench") -> tuple[str, ...]:
    """Command-line arguments from a grid or study file (`kind`), or a one-line error."""
    if value is None:
        return ()
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ValueError(f"{kind}.{key}={value!r} is invalid; allowed: a list of command-line arguments (strings)")
    return tuple(value)


def parse_seeds(value: Any) -> list[int]:
    """`10` means seeds 0..9; a list is taken as given."""
    if isinstance(value, int) and not isinstance(value, bool) and value >= 1:
        return list(range(value))
    if isinstance(value, list) and value and all(isinstance(s, int) and s >= 0 for s in value):
        if len(set(value)) != len(value):
            _fail("seeds", value, "distinct seeds")
        return list(value)
    _fail("seeds", value, "an integer >= 1 (seeds 0..n-1) or a non-empty list of integers >= 0")
    return []


def _variant(name: str, spec: Any, base: Path, dataset_names: set[str]) -> Variant:
    if isinstance(spec, str):
        spec = {"config": spec}
    if not isinstance(spec, dict) or "config" not in spec:
        _fail(f"variants.{name}", spec, "a config path or {config: path, args: [...], datasets: {name: [...]}}")
    unknown = set(spec) - {"config", "args", "datasets"}
    if unknown:
        _fail(f"variants.{name}", sorted(unknown)[0], "keys config, args, datasets")
    given = spec["config"] if isinstance(spec["config"], list) else [spec["config"]]
    configs = []
    for entry in given:
        path = Path(str(entry))
        path = path if path.is_absolute() else base / path
        if not path.is_file():
            _fail(f"variants.{name}.config", entry, "an existing fit config file (or a list of them)")
        configs.append(path)
    per_dataset = spec.get("datasets") or {}
    for ds in per_dataset:
        if ds not in dataset_names:
            _fail(f"variants.{name}.datasets", ds, f"one of the grid's datasets: {', '.join(sorted(dataset_names))}")
    return Variant(
        name,
        tuple(configs),
        str_list(f"variants.{name}.args", spec.get("args")),
        {ds: str_list(f"variants.{name}.datasets.{ds}", a) for ds, a in per_dataset.items()},
    )


def _evaluate(key: str, value: Any) -> dict[str, Any]:
    value = value or {}
    if not isinstance(value, dict):
        _fail(key, value, "a mapping of `gan-lab evaluate` options: " + ", ".join(EVALUATE_KEYS))
    for option in value:
        if option not in EVALUATE_KEYS:
            _fail(f"{key}.{option}", value[option], "keys " + ", ".join(EVALUATE_KEYS))
    return dict(value)


def _curves(key: str, value: Any) -> dict[str, Any] | None:
    if value is not None and not isinstance(value, dict):
        _fail(key, value, "null (no curves) or GenerativeMetrics options, e.g. {every_n_steps: 250}")
    return value


def _dataset(name: str, spec: Any) -> Dataset:
    if not isinstance(spec, dict) or not isinstance(spec.get("data"), dict) or "class_path" not in spec["data"]:
        _fail(f"datasets.{name}", spec, "{data: {class_path: ..., init_args: {...}}, args: [...]}")
    unknown = set(spec) - {"data", "args", "curves", "evaluate"}
    if unknown:
        _fail(f"datasets.{name}", sorted(unknown)[0], "keys data, args, curves, evaluate")
    return Dataset(
        name,
        dict(spec["data"]),
        str_list(f"datasets.{name}.args", spec.get("args")),
        _curves(f"datasets.{name}.curves", spec.get("curves")) or {},
        _evaluate(f"datasets.{name}.evaluate", spec.get("evaluate")),
    )


def read_mapping(path: str | Path, keys: tuple[str, ...], kind: str) -> dict[str, Any]:
    """A YAML file of `kind` (bench, study) as a mapping of known `keys`, or a one-line error."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"--config={str(path)!r} does not exist")
    raw = yaml.safe_load(path.read_text()) or {}
    if not isinstance(raw, dict):
        raise ValueError(f"{kind}.<file>={str(path)!r} is invalid; allowed: a YAML mapping with keys {', '.join(keys)}")
    for key in raw:
        if key not in keys:
            raise ValueError(f"{kind}.{key}={raw[key]!r} is invalid; allowed: keys {', '.join(keys)}")
    return raw


def load_grid(path: str | Path, base: Path | None = None) -> Grid:
    """Read and validate a grid file; relative config paths are taken from `base` (default: cwd)."""
    raw = read_mapping(path, GRID_KEYS, "bench")
    base = base or Path.cwd()
    for key in ("datasets", "variants"):
        if not isinstance(raw.get(key), dict) or not raw[key]:
            _fail(key, raw.get(key), "a non-empty mapping of name -> spec")
    datasets = [_dataset(n, s) for n, s in raw["datasets"].items()]
    variants = [_variant(n, s, base, set(raw["datasets"])) for n, s in raw["variants"].items()]
    max_steps = raw.get("max_steps")
    if max_steps is not None and (not isinstance(max_steps, int) or max_steps < 1):
        _fail("max_steps", max_steps, "null or an integer >= 1 (generator iterations)")
    curves = _curves("curves", raw.get("curves"))
    evaluate = _evaluate("evaluate", raw.get("evaluate"))
    return Grid(
        name=str(raw.get("name") or path.stem),
        seeds=parse_seeds(raw.get("seeds", 3)),
        variants=variants,
        datasets=datasets,
        max_steps=max_steps,
        fit_args=list(str_list("fit_args", raw.get("fit_args"))),
        curves=curves,
        evaluate=evaluate,
    )
