"""Test-session settings: quiet offline W&B, one thread per process (CI has 2 cores)."""

from __future__ import annotations

import os

import pytest
import torch

os.environ.setdefault("WANDB_MODE", "offline")
os.environ.setdefault("WANDB_SILENT", "true")
os.environ.setdefault("WANDB_DISABLE_CODE", "true")
os.environ.setdefault("PYTHONWARNINGS", "ignore")
torch.set_num_threads(1)


@pytest.fixture
def toy_config(tmp_path):
    """A minimal fit config on ring8 with tiny MLPs, written to tmp_path (returns its path)."""
    path = tmp_path / "toy.yaml"
    path.write_text(
        f"""
seed_everything: 0
trainer:
  default_root_dir: {tmp_path / "run"}
  max_steps: 6
  log_every_n_steps: 1
  enable_progress_bar: false
  enable_model_summary: false
  num_sanity_val_steps: 0
  logger:
    - class_path: lightning.pytorch.loggers.CSVLogger
      init_args: {{save_dir: ., name: logs}}
checkpoint: {{every_n_train_steps: 2}}
image_grid: {{every_n_steps: 3}}
model:
  class_path: gan_modules.WGANGP
  init_args:
    n_critic: 2
    z_dim: 2
    generator: {{arch: mlp, hidden: [16, 16]}}
    critic: {{arch: mlp, hidden: [16, 16]}}
data:
  class_path: datamodules.Toy2DDataModule
  init_args: {{dataset: ring8, size: 512, batch_size: 32}}
"""
    )
    return path
