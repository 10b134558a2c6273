"""The network zoo, built from small config dicts: {"arch": name, "init": scheme, **constructor kwargs}."""

from __future__ import annotations

import inspect
from typing import Any

from torch import nn

from gan_modules.constraints import apply_spectral_norm
from gan_modules.nets.autoencoder import AutoencoderCritic
from gan_modules.nets.base import Critic, Generator, MinibatchDiscrimination
from gan_modules.nets.dcgan import DCGANCritic, DCGANGenerator
from gan_modules.nets.init import INITS, initialise
from gan_modules.nets.mlp import MLPCritic, MLPGenerator
from gan_modules.nets.resnet import ResNetCritic, ResNetGenerator
from gan_modules.nets.standard_cnn import StandardCNNCritic, StandardCNNGenerator

GENERATORS: dict[str, type[Generator]] = {
    "mlp": MLPGenerator,
    "dcgan": DCGANGenerator,
    "resnet": ResNetGenerator,
    "standard_cnn": StandardCNNGenerator,
}
CRITICS: dict[str, type[nn.Module]] = {
    "mlp": MLPCritic,
    "dcgan": DCGANCritic,
    "resnet": ResNetCritic,
    "standard_cnn": StandardCNNCritic,
    "autoencoder": AutoencoderCritic,
}


def _build(registry: dict[str, type[nn.Module]], role: str, spec: dict[str, Any], *args: Any) -> nn.Module:
    """`init` (a key of nets.init.INITS, default PyTorch's) is applied to the built net."""
    spec = dict(spec)
    arch = spec.pop("arch", None)
    scheme = spec.pop("init", "default")
    if arch not in registry:
        raise ValueError(f"model.{role}.arch={arch!r} is unknown; allowed: {', '.join(registry)}")
    accepted = set(inspect.signature(registry[arch]).parameters)
    for key in spec:
        if key not in accepted:
            allowed = ", ".join(sorted((accepted - {"z_dim", "data_shape"}) | {"init"}))
            raise ValueError(f"model.{role}.{key} is not an option of the {arch} {role}; allowed: {allowed}")
    return initialise(registry[arch](*args, **spec), scheme, role)


def build_generator(spec: dict[str, Any], z_dim: int, data_shape: tuple[int, ...]) -> nn.Module:
    return _build(GENERATORS, "generator", spec, z_dim, data_shape)


def build_critic(spec: dict[str, Any], data_shape: tuple[int, ...]) -> nn.Module:
    """Build a critic; `spectral_norm: true` in the spec normalises every weight layer (SNGAN), after `init`."""
    spec = dict(spec)
    spectral = bool(spec.pop("spectral_norm", False))
    critic = _build(CRITICS, "critic", spec, data_shape)
    return apply_spectral_norm(critic) if spectral else critic


__all__ = [
    "CRITICS",
    "GENERATORS",
    "INITS",
    "AutoencoderCritic",
    "Critic",
    "Generator",
    "MinibatchDiscrimination",
    "build_critic",
    "build_generator",
]
