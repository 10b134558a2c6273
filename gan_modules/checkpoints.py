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


def read_checkpoint(path: str | Path, flag: str = "--ckpt_path") -> dict[str, Any]:
    """The checkpoint at `path`, or a one-line error naming `flag` for a path that is missing, a
    folder, not a torch file, truncated, or not written by gan-lab."""
    path = Path(path)
    if path.is_dir():
        raise ValueError(
            f"{flag}={str(path)!r} is a folder; allowed: a .ckpt file (e.g. {path / 'checkpoints' / 'last.ckpt'})"
        )
    if not path.is_file():
        raise FileNotFoundError(f"{flag}={str(path)!r} does not exist")
    try:
        checkpoint = torch.load(path, map_location="cpu", weights_only=False)
    except Exception as err:  # pickle, zip and torch errors alike: the bytes are not a whole checkpoint
        reason = str(err).splitlines()[0] if str(err) else type(err).__name__
        raise ValueError(f"{flag}={str(path)!r} is not a readable checkpoint (truncated or not one: {reason})") from err
    if not isinstance(checkpoint, dict) or "gan_lab" not in checkpoint:
        raise ValueError(f"{flag}={str(path)!r} is not a gan-lab checkpoint (no 'gan_lab' entry)")
    return checkpoint


def check_resumable(path: str | Path, module: torch.nn.Module, flag: str = "ckpt_path") -> None:
    """Refuse, before anything is written, a checkpoint whose tensors do not fit `module` (another
    architecture, width or data shape): Lightning would only find out after the run had started."""
    state = read_checkpoint(path, flag)["state_dict"]
    expected = module.state_dict()
    for name, tensor in expected.items():
        if name not in state:
            raise ValueError(f"{flag}={str(path)!r} does not fit this model: it has no {name}; allowed: {_same_nets()}")
        if tuple(state[name].shape) != tuple(tensor.shape):
            raise ValueError(
                f"{flag}={str(path)!r} does not fit this model: {name} is {tuple(state[name].shape)} there, "
                f"{tuple(tensor.shape)} here; allowed: {_same_nets()}"
            )
    extra = sorted(set(state) - set(expected))
    if extra:
        raise ValueError(f"{flag}={str(path)!r} does not fit this model: it has {extra[0]}; allowed: {_same_nets()}")


def _same_nets() -> str:
    return "a checkpoint of the same networks, or another --trainer.default_root_dir for a fresh run"


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
