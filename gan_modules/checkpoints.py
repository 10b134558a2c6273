"""Rebuild a trained module (and its datamodule) from nothing but a checkpoint file."""

from __future__ import annotations

import importlib
import inspect
from pathlib import Path
from typing import Any

import torch

from datamodules import GANDataModule
from gan_modules.engine import AdversarialModule


def _import(path: str) -> Any:
    module, _, name = path.rpartition(".")
    return getattr(importlib.import_module(module), name)


def read_checkpoint(path: str | Path) -> dict[str, Any]:
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"--ckpt_path={str(path)!r} does not exist")
    checkpoint = torch.load(path, map_location="cpu", weights_only=False)
    if "gan_lab" not in checkpoint:
        raise ValueError(f"--ckpt_path={str(path)!r} is not a gan-lab checkpoint (no 'gan_lab' entry)")
    return checkpoint


def load_module(path: str | Path, map_location: str = "cpu") -> AdversarialModule:
    """The variant class is recorded in the checkpoint, so no config is needed to load it."""
    checkpoint = read_checkpoint(path)
    cls = _import(checkpoint["gan_lab"]["module_class"])
    module = cls.load_from_checkpoint(str(path), map_location=map_location)
    module.eval()
    return module


def load_datamodule(path: str | Path) -> GANDataModule:
    """The datamodule the checkpoint was trained on, rebuilt from its saved hyperparameters."""
    checkpoint = read_checkpoint(path)
    cls = _import(checkpoint["gan_lab"]["datamodule_class"])
    saved = checkpoint.get("datamodule_hyper_parameters", {})
    # the base class records its own arguments too (e.g. num_val_batches), which subclasses may not take
    accepted = inspect.signature(cls).parameters
    return cls(**{k: v for k, v in saved.items() if k in accepted})
