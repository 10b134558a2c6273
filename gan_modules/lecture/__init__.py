"""The lecture's claims as runnable experiments: `gan-lab lecture <name>`.

Each module has `run(size="full"|"small", out_dir, seed) -> dict`: it prints its numbers, writes
`<out_dir>/<name>.png` and returns the numbers. "small" is the size the tests run.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable

EXPERIMENTS: dict[str, str] = {
    "js-vs-emd": "js_vs_emd",
    "vanishing-gradient": "vanishing_gradient",
    "clipping-vs-gp": "clipping_vs_gp",
    "where-lipschitz": "where_lipschitz",
    "ebgan-pretrain": "ebgan_pretrain",
    "mode-collapse": "mode_collapse",
}


def get_experiment(name: str) -> Callable[..., dict]:
    """The `run` function of a named experiment, imported on demand (the CLI imports this registry at
    start-up to discover subcommands)."""
    if name not in EXPERIMENTS:
        raise ValueError(f"lecture experiment {name!r} is unknown; allowed: {', '.join(EXPERIMENTS)}")
    return importlib.import_module(f"gan_modules.lecture.{EXPERIMENTS[name]}").run


__all__ = ["EXPERIMENTS", "get_experiment"]
