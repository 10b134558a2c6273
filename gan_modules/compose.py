"""`--model <preset> --data <dataset>`: the composed config of a paper's setting.

`configs/` mirrors the code, each value written once:
- `configs/model/<preset>.yaml`: a paper's objective and optimiser (a LightningCLI `--model` file);
- `configs/data/<dataset>.yaml`: a datamodule (a `--data` file);
- `configs/family/<family>.yaml`: what every objective shares on a family of data sets (the nets,
  noise dimension, number of iterations and output intervals);
- `configs/experiment/<preset>/<family>.yaml`: what a paper ties to a family (WGAN-GP's lambda on its
  toy data, LSGAN's networks), with its citation;
- `configs/defaults.yaml`: the trainer and logger block, for every run.

`gan-lab fit --model wgan_gp --data grid25` and `gan-lab fit --model configs/model/wgan_gp.yaml --data
configs/data/grid25.yaml` both compose preset, data, family and experiment files, in that order, and
name them in one line; anything after them on the command line wins.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import TYPE_CHECKING

import yaml

if TYPE_CHECKING:
    from gan_modules.engine import AdversarialModule

CONFIGS = Path(__file__).resolve().parents[1] / "configs"
TOY2D = ("ring8", "grid25", "swissroll")  # datamodules.toy2d's mixtures: one family


def presets() -> dict[str, Path]:
    return {p.stem: p for p in sorted((CONFIGS / "model").glob("*.yaml"))}


def datasets() -> dict[str, Path]:
    return {p.stem: p for p in sorted((CONFIGS / "data").glob("*.yaml"))}


def family(dataset: str) -> str:
    return "toy2d" if dataset in TOY2D else dataset


def overlays(preset: str | None, dataset: str | None) -> list[Path]:
    """The family and experiment files that apply to the pair, those that exist, in order."""
    if dataset is None:
        return []
    fam = family(dataset)
    found = [CONFIGS / "family" / f"{fam}.yaml"]
    if preset is not None:
        found.append(CONFIGS / "experiment" / preset / f"{fam}.yaml")
    return [p for p in found if p.is_file()]


def _resolve(value: str, known: dict[str, Path], group: str) -> tuple[str | None, str]:
    """(the preset/dataset name or None, the argument value): a plain name becomes its file."""
    if value in known:
        return value, str(known[value])
    path = Path(value)
    if path.suffix in (".yaml", ".yml") and path.is_file() and path.resolve().parent == (CONFIGS / group).resolve():
        return path.stem, value
    if re.fullmatch(r"[a-z0-9_]+", value):  # a plain name, not a class path, class name or file
        raise ValueError(f"{group}={value!r} is unknown; allowed: {', '.join(known)} or a config file or class path")
    return None, value


def expand(args: list[str]) -> tuple[list[str], str | None]:
    """`args` with preset and dataset names replaced by their files and the pair's overlays added
    after the later of the two, plus a one-line description of the composition (None if none)."""
    out, names, first, last = list(args), {"model": None, "data": None}, len(args), -1
    for group, known in (("model", presets()), ("data", datasets())):
        for i, arg in enumerate(out):
            inline = arg.startswith(f"--{group}=")
            if not (arg == f"--{group}" and i + 1 < len(out)) and not inline:
                continue
            idx = i if inline else i + 1
            name, value = _resolve(out[idx].split("=", 1)[1] if inline else out[idx], known, group)
            out[idx] = f"--{group}={value}" if inline else value
            if name is not None:
                names[group], first, last = name, min(first, i), max(last, idx)
    preset, dataset = names["model"], names["data"]
    if last < 0:
        return out, None
    out[last + 1 : last + 1] = [f"--config={p}" for p in overlays(preset, dataset)]
    if preset is not None and dataset is not None:  # before the pair, so a user's own root wins
        out.insert(first, f"--trainer.default_root_dir=runs/{preset}/{dataset}")
    parts = [p for p in (preset and f"model/{preset}", dataset and f"data/{dataset}") if p]
    parts += [str(p.relative_to(CONFIGS).with_suffix("")) for p in overlays(preset, dataset)]
    return out, "gan-lab: composed " + " + ".join(parts)


def preset(name: str, **overrides: object) -> AdversarialModule:
    """The preset's module in Python (notebooks, lecture experiments, tests): its
    `configs/model/<name>.yaml` init args, each overridden by a keyword of the same name."""
    from gan_modules.engine import AdversarialModule

    known = presets()
    if name not in known:
        raise ValueError(f"model={name!r} is unknown; allowed: {', '.join(known)}")
    spec = yaml.safe_load(known[name].read_text())
    return AdversarialModule(**{**spec.get("init_args", {}), **overrides})
