"""The network zoo, built from small config dicts: {"arch": name, **constructor kwargs}."""

from __future__ import annotations

import inspect
from typing import Any

from torch import nn

from gan_modules.constraints import apply_spectral_norm
from gan_modules.nets.autoencoder import AutoencoderCritic
from gan_modules.nets.base import Critic, Generator, MinibatchDiscrimination
from gan_modules.nets.dcgan import DCGANCritic, DCGANGenerator
from gan_modules.nets.mlp import MLPCritic, MLPGenerator
from gan_modules.nets.pack import PackedCritic, packed_shape
from gan_modules.nets.resnet import ResNetCritic, ResNetGenerator

GENERATORS: dict[str, type[Generator]] = {"mlp": MLPGenerator, "dcgan": DCGANGenerator, "resnet": ResNetGenerator}
CRITICS: dict[str, type[nn.Module]] = {
    "mlp": MLPCritic,
    "dcgan": DCGANCritic,
    "resnet": ResNetCritic,
    "autoencoder": AutoencoderCritic,
}


CRITIC_WRAPPERS = ("pack", "spectral_norm")  # critic options of every arch, applied by `build_critic`


def _build(
    registry: dict[str, type[nn.Module]], role: str, spec: dict[str, Any], *args: Any, common: tuple[str, ...] = ()
) -> nn.Module:
    spec = dict(spec)
    arch = spec.pop("arch", None)
    if arch not in registry:
        raise ValueError(f"model.{role}.arch={arch!r} is unknown; allowed: {', '.join(registry)}")
    accepted = set(inspect.signature(registry[arch]).parameters)
    for key in spec:
        if key not in accepted:
            allowed = ", ".join(sorted((accepted | set(common)) - {"z_dim", "data_shape"}))
            raise ValueError(f"model.{role}.{key} is not an option of the {arch} {role}; allowed: {allowed}")
    return registry[arch](*args, **spec)


def build_generator(spec: dict[str, Any], z_dim: int, data_shape: tuple[int, ...]) -> nn.Module:
    return _build(GENERATORS, "generator", spec, z_dim, data_shape)


def build_critic(spec: dict[str, Any], data_shape: tuple[int, ...]) -> nn.Module:
    """Build a critic; `spectral_norm: true` in the spec normalises every weight layer (SNGAN),
    `pack: m` makes it score packs of m samples (PacGAN)."""
    spec = dict(spec)
    spectral = bool(spec.pop("spectral_norm", False))
    pack = spec.pop("pack", 1)
    if isinstance(pack, bool) or not isinstance(pack, int) or pack < 1:
        raise ValueError(f"model.critic.pack={pack!r} is invalid; allowed: an integer >= 1 (1 = no packing)")
    critic = _build(CRITICS, "critic", spec, packed_shape(tuple(data_shape), pack), common=CRITIC_WRAPPERS)
    if spectral:
        apply_spectral_norm(critic)
    return PackedCritic(critic, pack) if pack > 1 else critic


__all__ = [
    "CRITICS",
    "GENERATORS",
    "AutoencoderCritic",
    "Critic",
    "Generator",
    "MinibatchDiscrimination",
    "PackedCritic",
    "build_critic",
    "build_generator",
]
