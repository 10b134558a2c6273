"""Test-session settings: quiet offline W&B, one thread per process (CI has 2 cores), and the one
factory for `gan-lab fit` YAML that tests share."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import torch
import yaml

os.environ.setdefault("WANDB_MODE", "offline")
os.environ.setdefault("WANDB_SILENT", "true")
os.environ.setdefault("WANDB_DISABLE_CODE", "true")
os.environ.setdefault("PYTHONWARNINGS", "ignore")
torch.set_num_threads(1)

FitConfig = Callable[..., Path]


def toy_fit_config(root: Path) -> dict[str, Any]:
    """A minimal fit config on ring8 with tiny MLPs (6 iterations, CSV logs) whose outputs go to `root`."""
    return {
        "seed_everything": 0,
        "trainer": {
            "default_root_dir": str(root),
            "accelerator": "cpu",
            "devices": 1,
            "max_steps": 6,
            "log_every_n_steps": 1,
            "enable_progress_bar": False,
            "enable_model_summary": False,
            "num_sanity_val_steps": 0,
            "logger": [
                {"class_path": "lightning.pytorch.loggers.CSVLogger", "init_args": {"save_dir": ".", "name": "logs"}}
            ],
        },
        "checkpoint": {"every_n_train_steps": 2},
        "image_grid": {"every_n_steps": 3},
        "model": {
            "class_path": "gan_modules.WGANGP",
            "init_args": {
                "n_critic": 2,
                "z_dim": 2,
                "generator": {"arch": "mlp", "hidden": [16, 16]},
                "critic": {"arch": "mlp", "hidden": [16, 16]},
            },
        },
        "data": {
            "class_path": "datamodules.Toy2DDataModule",
            "init_args": {"dataset": "ring8", "size": 512, "batch_size": 32},
        },
    }


def merged(base: dict[str, Any], overrides: dict[str, Any]) -> dict[str, Any]:
    """`base` with `overrides` merged in, nested dicts key by key (a None value deletes the key)."""
    out = dict(base)
    for key, value in overrides.items():
        if value is None:
            out.pop(key, None)
        elif isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = merged(out[key], value)
        else:
            out[key] = value
    return out


def write_fit_config(path: Path, root: Path, **overrides: Any) -> Path:
    """Write `toy_fit_config(root)` with nested `overrides` (e.g. `trainer={"max_steps": 50}`) to `path`."""
    path.write_text(yaml.safe_dump(merged(toy_fit_config(root), overrides), sort_keys=False))
    return path


@pytest.fixture(scope="session")
def make_fit_config() -> Callable[..., Path]:
    """`write_fit_config` itself, for fixtures of any scope."""
    return write_fit_config


@pytest.fixture
def fit_config(tmp_path: Path) -> FitConfig:
    """`fit_config(name="toy.yaml", root=tmp_path / "run", **overrides)`: `write_fit_config` into tmp_path."""

    def write(name: str = "toy.yaml", root: Path | None = None, **overrides: Any) -> Path:
        return write_fit_config(tmp_path / name, root if root is not None else tmp_path / "run", **overrides)

    return write


@pytest.fixture
def toy_config(fit_config: FitConfig) -> Path:
    """The toy fit config as it is (outputs under tmp_path / "run")."""
    return fit_config()
