"""Test-session settings (quiet offline W&B, one thread and one metric cache per process: CI runs
two pytest-xdist workers on 2 cores) and the one factory for `gan-lab fit` YAML configs in tests
(`fit_yaml`)."""

from __future__ import annotations

import copy
import io
import os
import sys
import tempfile
from contextlib import redirect_stdout
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
# This process's own metric cache (real features, the digit classifier trained on first use): no test
# reads a user's ~/.cache/gan-lab, and parallel pytest-xdist workers never write one file together.
os.environ["GAN_LAB_CACHE"] = tempfile.mkdtemp(prefix="gan-lab-test-cache-")

WGAN_GP = {"loss": "wasserstein", "regularizers": [{"name": "gradient_penalty", "weight": 10.0}]}
# A toy WGAN-GP fit on ring8 with tiny MLPs: 6 generator iterations of 2 critic steps, on the CPU.
TOY_FIT: dict[str, Any] = {
    "seed_everything": 0,
    "trainer": {
        "max_steps": 6,
        "accelerator": "cpu",
        "devices": 1,
        "log_every_n_steps": 1,
        "enable_progress_bar": False,
        "enable_model_summary": False,
        "num_sanity_val_steps": 0,
        "logger": False,
    },
    "checkpoint": {"every_n_train_steps": 2},
    "image_grid": {"every_n_steps": 3},
    "model": {
        "class_path": "gan_modules.AdversarialModule",
        "init_args": {
            **WGAN_GP,
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
CSV_RUN_LOGGER = {"class_path": "gan_modules.loggers.CSVRunLogger", "init_args": {"save_dir": ".", "name": "logs"}}
CSV_LOGGER = [{"class_path": "lightning.pytorch.loggers.CSVLogger", "init_args": {"save_dir": ".", "name": "logs"}}]


def merged(base: dict[str, Any], overrides: dict[str, Any]) -> dict[str, Any]:
    """`base` with `overrides` merged in key by key: mappings merge, anything else (lists included)
    replaces, and None removes the key."""
    out = copy.deepcopy(base)
    for key, value in overrides.items():
        if value is None:
            out.pop(key, None)
        elif isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = merged(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def fit_config(**overrides: Any) -> dict[str, Any]:
    """TOY_FIT with top-level sections merged in (`merged`), e.g.
    ``fit_config(model={"init_args": {"n_critic": 1}}, trainer={"max_steps": 4})``."""
    return merged(TOY_FIT, overrides)


def fit_yaml(path: Path, **overrides: Any) -> Path:
    """Write `fit_config(**overrides)` as YAML: to `path`, or to `path/fit.yaml` if it is a folder."""
    path = Path(path)
    if path.is_dir():
        path = path / "fit.yaml"
    path.write_text(yaml.safe_dump(fit_config(**overrides), sort_keys=False))
    return path


def fit_command(config: Path, root: Path) -> list[str]:
    """`gan-lab fit` of `config` into `root` as a subprocess command line (what `gan-lab` runs)."""
    return [
        sys.executable,
        "-m",
        "gan_modules.cli",
        "fit",
        "--config",
        str(config),
        "--trainer.default_root_dir",
        str(root),
    ]


def write_fit_config(path: Path, root: Path, **overrides: Any) -> Path:
    """`fit_yaml` with a CSV logger and its run root at `root`, then `overrides` (section by section)."""
    base = {"trainer": {"default_root_dir": str(root), "logger": CSV_LOGGER}}
    return fit_yaml(path, **merged(base, overrides))


@pytest.fixture(scope="session")
def make_fit_config():
    """`write_fit_config` itself, for fixtures of any scope."""
    return write_fit_config


@pytest.fixture
def toy_config(tmp_path):
    """The toy fit config with a CSV logger and its run root at tmp_path/run (returns its path)."""
    return fit_yaml(tmp_path / "toy.yaml", trainer={"default_root_dir": str(tmp_path / "run"), "logger": CSV_LOGGER})


def resolved_config(args: list[str]) -> dict:
    """What `gan-lab fit <args> --print_config` resolves (presets composed, nothing trained)."""
    from gan_modules.cli import run_lightning
    from gan_modules.compose import expand

    out = io.StringIO()
    with redirect_stdout(out), pytest.raises(SystemExit):
        run_lightning(expand(["fit", *args, "--print_config"])[0])
    return yaml.safe_load(out.getvalue())


STOP_STEPS = 1000  # a stopped bench or study fit: the signal lands a few iterations after its first checkpoint (10)


def signal_group_when(proc: Any, ready: Any, signum: int) -> tuple[str, str]:
    """Once `ready()` holds, send `signum` to `proc`'s whole process group (started with
    `start_new_session`), as a terminal's Ctrl-C or a scheduler's SIGTERM does; returns its output."""
    import time

    try:
        deadline = time.monotonic() + 600
        while not ready() and time.monotonic() < deadline:
            assert proc.poll() is None, proc.communicate()
            time.sleep(0.05)
        os.killpg(proc.pid, signum)
        return proc.communicate(timeout=300)
    finally:
        proc.kill()
