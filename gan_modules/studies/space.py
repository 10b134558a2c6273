"""The search space of a study: dotted `gan-lab fit` keys with a distribution each, as Optuna
distributions, and the fit arguments a point of the space becomes.

An entry looks like::

    model.init_args.lr_d: {type: log_uniform, low: 1.0e-5, high: 1.0e-2}
    model.init_args.n_critic: {type: int, low: 1, high: 5}
    data.init_args.batch_size: {type: categorical, choices: [16, 32, 64, 128]}
    model.init_args.betas[0]: {type: uniform, low: 0.0, high: 1.0}   # one element of a list-valued key

A key ending in `[i]` is element i of a list-valued fit key: the elements of one key are joined into
one argument, e.g. `--model.init_args.betas=[0.5, 0.9]`. Comma-separated keys share one value, e.g.
`model.init_args.lr_g,model.init_args.lr_d` (one learning rate for both networks, as Lucic et al.).
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping
from itertools import product
from typing import Any

import optuna
from optuna.distributions import (
    BaseDistribution,
    CategoricalDistribution,
    FloatDistribution,
    IntDistribution,
)

TYPES = ("log_uniform", "uniform", "int", "log_int", "categorical")
_ELEMENT = re.compile(r"^(?P<key>[A-Za-z_][\w.]*)\[(?P<index>\d+)\]$")
_KEY = re.compile(r"^[A-Za-z_][\w.]*(\[\d+\])?(,[A-Za-z_][\w.]*(\[\d+\])?)*$")


def _fail(key: str, value: Any, allowed: str) -> None:
    raise ValueError(f"study.{key}={value!r} is invalid; allowed: {allowed}")


def _number(key: str, spec: Mapping[str, Any], name: str, integer: bool) -> float:
    value = spec.get(name)
    ok = isinstance(value, int) if integer else isinstance(value, int | float)
    if not ok or isinstance(value, bool) or not math.isfinite(value):
        _fail(f"{key}.{name}", value, "an integer" if integer else "a finite number")
    return value


def distribution(key: str, spec: Any) -> BaseDistribution:
    """One space entry as an Optuna distribution, checked (type, bounds) in one line."""
    where = f"space.{key}"
    if not _KEY.match(key):
        _fail("space", key, "dotted gan-lab fit keys, e.g. model.init_args.lr_d or model.init_args.betas[0]")
    if not isinstance(spec, Mapping) or spec.get("type") not in TYPES:
        _fail(f"{where}.type", spec.get("type") if isinstance(spec, Mapping) else spec, ", ".join(TYPES))
    kind = spec["type"]
    allowed = {"type", "choices"} if kind == "categorical" else {"type", "low", "high"}
    for extra in sorted(set(spec) - allowed):
        _fail(f"{where}.{extra}", spec[extra], "keys " + ", ".join(sorted(allowed)))
    if kind == "categorical":
        choices = spec.get("choices")
        if not isinstance(choices, list) or not choices:
            _fail(f"{where}.choices", choices, "a non-empty list")
        return CategoricalDistribution([json.dumps(c) if isinstance(c, list | dict) else c for c in choices])
    integer = kind in ("int", "log_int")
    low, high = _number(where, spec, "low", integer), _number(where, spec, "high", integer)
    if low > high:
        _fail(f"{where}.low", low, f"a value <= high ({high})")
    if kind.startswith("log") and low <= 0:
        _fail(f"{where}.low", low, "a value > 0 for a log scale")
    if integer:
        return IntDistribution(int(low), int(high), log=kind == "log_int")
    return FloatDistribution(float(low), float(high), log=kind == "log_uniform")


def parse_space(raw: Any, where: str = "space") -> dict[str, BaseDistribution]:
    """A mapping of dotted key -> entry; the order is kept (it is the report's column order)."""
    if raw is None:
        return {}
    if not isinstance(raw, Mapping):
        _fail(where, raw, "a mapping of dotted fit key -> {type, low, high} or {type: categorical, choices}")
    return {str(key): distribution(str(key), spec) for key, spec in raw.items()}


def suggest(trial: optuna.Trial, space: Mapping[str, BaseDistribution]) -> dict[str, Any]:
    """The trial's value of every key: its enqueued value when it has one, else the sampler's."""
    params = {}
    for key, dist in space.items():
        if isinstance(dist, CategoricalDistribution):
            params[key] = trial.suggest_categorical(key, dist.choices)
        elif isinstance(dist, IntDistribution):
            params[key] = trial.suggest_int(key, dist.low, dist.high, log=dist.log)
        else:
            params[key] = trial.suggest_float(key, dist.low, dist.high, log=dist.log)
    return params


def random_points(space: Mapping[str, BaseDistribution], n: int, seed: int) -> list[dict[str, Any]]:
    """n points drawn by Optuna's RandomSampler(seed), fixed before any trial runs: the same seed
    gives the same trials whatever the number of workers and their order (Lucic et al. 2018 Sec. 5:
    each model gets the same number of random hyperparameter samples)."""
    draw = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=seed))
    return [draw.ask(dict(space)).params for _ in range(n)]


def grid_points(space: Mapping[str, BaseDistribution]) -> list[dict[str, Any]]:
    """Every combination of the categorical choices, first key slowest (as Optuna's GridSampler
    enumerates a grid, but in a fixed order)."""
    for key, dist in space.items():
        if not isinstance(dist, CategoricalDistribution):
            _fail(f"space.{key}.type", "not categorical", "categorical entries only in a grid study")
    keys = list(space)
    return [dict(zip(keys, values, strict=True)) for values in product(*(space[k].choices for k in keys))]


def arg_value(value: Any) -> str:
    """A value as jsonargparse reads it on the command line (strings as given, the rest as JSON)."""
    return value if isinstance(value, str) else json.dumps(value)


def fit_arguments(params: Mapping[str, Any]) -> list[str]:
    """`--key=value` for each key (each of a comma-separated group); the elements `key[i]` of one
    list-valued key become one `--key=[...]`."""
    lists: dict[str, dict[int, Any]] = {}
    args = []
    for key, value in ((k, v) for keys, v in params.items() for k in keys.split(",")):
        element = _ELEMENT.match(key)
        if element:
            lists.setdefault(element["key"], {})[int(element["index"])] = value
        else:
            args.append(f"--{key}={arg_value(value)}")
    for key, elements in lists.items():
        if sorted(elements) != list(range(len(elements))):
            _fail(f"space.{key}", sorted(elements), "elements [0], [1], ... without gaps")
        args.append(f"--{key}={json.dumps([elements[i] for i in range(len(elements))])}")
    return args
