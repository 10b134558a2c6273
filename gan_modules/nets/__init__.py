"""The network zoo, built from small config dicts: {"arch": name, "init": scheme, **constructor kwargs}.

Architectures are entries of two registries (`gan_modules.registry`); an `arch` with a dot is an
import path to a network class anywhere. The critic's spectral normalisation is a constraint of the
objective (`model.constraint: spectral_norm`), applied after `init`, not an option of a net; the
generator's (`model.generator.spectral_norm: true`, SAGAN) conditions its training and bounds
nothing the loss relies on, so it is an option of the generator.
"""

from __future__ import annotations

from typing import Any

from torch import nn

from gan_modules.constraints import WEIGHT_LAYERS, apply_spectral_norm
from gan_modules.nets.autoencoder import AutoencoderCritic
from gan_modules.nets.base import Critic, Generator
from gan_modules.nets.conditional import LabelInput
from gan_modules.nets.dcgan import NORMS, DCGANCritic, DCGANGenerator
from gan_modules.nets.init import INITS, initialise
from gan_modules.nets.minibatch import MinibatchDiscrimination
from gan_modules.nets.mlp import ACTIVATIONS, MLPCritic, MLPGenerator
from gan_modules.nets.pack import PackedCritic, packed_shape
from gan_modules.nets.resnet import ResNetCritic, ResNetGenerator
from gan_modules.nets.standard_cnn import StandardCNNCritic, StandardCNNGenerator
from gan_modules.registry import Registry

GENERATORS: Registry[nn.Module] = Registry("model.generator.arch")
CRITICS: Registry[nn.Module] = Registry("model.critic.arch")
for _name, _cls in {
    "mlp": MLPGenerator,
    "dcgan": DCGANGenerator,
    "resnet": ResNetGenerator,
    "standard_cnn": StandardCNNGenerator,
}.items():
    GENERATORS.register(_name)(_cls)
for _name, _cls in {
    "mlp": MLPCritic,
    "dcgan": DCGANCritic,
    "resnet": ResNetCritic,
    "standard_cnn": StandardCNNCritic,
    "autoencoder": AutoencoderCritic,
}.items():
    CRITICS.register(_name)(_cls)


CRITIC_OPTIONS = ("pack", "minibatch_compile")  # critic options of every arch, applied by `build_critic`
GENERATOR_OPTIONS = ("spectral_norm",)  # generator options of every arch, applied by `build_generator`


SET_BY_MODEL = ("z_dim", "data_shape", "num_classes")  # constructor arguments the model fills in


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _is_dropout(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and 0 <= v < 1


# Sizes and switches the nets share, checked by name so a bad one is named before torch fails on it
# mid-build (or, for a switch, before a value such as 3 is read as true)
OPTION_CHECKS: dict[str, tuple[Any, str]] = {
    "hidden": (lambda v: isinstance(v, (list, tuple)) and all(_is_int(h) and h >= 1 for h in v), "integers >= 1"),
    "width": (lambda v: _is_int(v) and v >= 1, "an integer >= 1"),
    "code_dim": (lambda v: _is_int(v) and v >= 1, "an integer >= 1"),
    "minibatch_kernels": (lambda v: _is_int(v) and v >= 0, "an integer >= 0 (0: none)"),
    "dropout": (
        lambda v: _is_dropout(v) or (isinstance(v, (list, tuple)) and all(_is_dropout(d) for d in v)),
        "a float in [0, 1), or one per block",
    ),
    "activation": (lambda v: isinstance(v, str) and v in ACTIVATIONS, ", ".join(ACTIVATIONS)),
    "norm": (lambda v: isinstance(v, str) and v in NORMS, ", ".join(NORMS)),
    "batch_norm": (lambda v: isinstance(v, bool), "true, false"),
    "head_bias": (lambda v: isinstance(v, bool), "true, false"),
}


def _build(
    registry: Registry[nn.Module],
    role: str,
    spec: dict[str, Any],
    *args: Any,
    common: tuple[str, ...] = (),
    **set_by_model: Any,
) -> nn.Module:
    """`init` (a key of nets.init.INITS, default PyTorch's) is applied to the built net."""
    spec = dict(spec)
    arch = spec.pop("arch", None)
    scheme = spec.pop("init", "default")
    if not isinstance(arch, str):
        raise ValueError(f"model.{role}.arch={arch!r} is unknown; allowed: {', '.join(registry.names())}")
    cls = registry.factory(arch, f"model.{role}.arch")
    accepted = set(registry.options(arch)) - set(SET_BY_MODEL)
    for key in spec:
        if key not in accepted:
            allowed = ", ".join(sorted(accepted | set(common) | {"init"}))
            raise ValueError(f"model.{role}.{key} is not an option of the {arch} {role}; allowed: {allowed}")
        valid, allowed = OPTION_CHECKS.get(key, (None, ""))
        if valid is not None and not valid(spec[key]):
            raise ValueError(f"model.{role}.{key}={spec[key]!r} is invalid; allowed: {allowed}")
    return initialise(cls(*args, **spec, **set_by_model), scheme, role)


def build_generator(
    spec: dict[str, Any], z_dim: int, data_shape: tuple[int, ...], num_classes: int = 0, label_input: bool = False
) -> nn.Module:
    """Build a generator; with `num_classes` > 0 it takes `forward(z, y)` (conditional BatchNorm, and with
    `label_input` the one-hot label beside the noise too, `LabelInput`). `spectral_norm: true` divides its
    Linear and conv weights by their largest singular value, as SAGAN does (Zhang et al. 2019, Sec. 4:
    it stabilises the generator's training); class embeddings (conditional BatchNorm's gains) are left
    alone."""
    spec = dict(spec)
    normalised = spec.pop("spectral_norm", False)
    if not isinstance(normalised, bool):
        raise ValueError(f"model.generator.spectral_norm={normalised!r} is invalid; allowed: true, false")
    net = _build_generator(spec, z_dim, data_shape, num_classes, label_input)
    return apply_spectral_norm(net, layers=WEIGHT_LAYERS) if normalised else net


def _build_generator(
    spec: dict[str, Any], z_dim: int, data_shape: tuple[int, ...], num_classes: int, label_input: bool
) -> nn.Module:
    if label_input and not num_classes:
        raise ValueError(
            "model.label_input=true is invalid with model.num_classes=0 (there is no label to feed); allowed: "
            "false, or model.num_classes > 0"
        )
    if not num_classes:
        return _build(GENERATORS, "generator", spec, z_dim, data_shape, common=GENERATOR_OPTIONS)
    arch = spec.get("arch")
    if isinstance(arch, str) and "num_classes" not in GENERATORS.options(arch):
        raise ValueError(
            f"model.generator.arch={arch!r} is invalid with model.num_classes={num_classes} (it takes no labels); "
            f"allowed: {', '.join(GENERATORS.names())}"
        )
    net = _build(
        GENERATORS,
        "generator",
        spec,
        z_dim + num_classes * label_input,
        data_shape,
        common=GENERATOR_OPTIONS,
        num_classes=num_classes,
    )
    return LabelInput(net, num_classes) if label_input else net


CONDITIONING = ("projection", "auxiliary_classifier")  # how a conditional critic reads the label


def build_critic(
    spec: dict[str, Any], data_shape: tuple[int, ...], num_classes: int = 0, conditioning: str = "projection"
) -> nn.Module:
    """Build a critic; `pack: m` makes it score packs of m samples (PacGAN, Lin et al. 2018); with
    `num_classes` > 0 it is a projection critic, `forward(x, y)` (`Critic.add_projection`), or with
    `conditioning="auxiliary_classifier"` an AC-GAN critic (`Critic.add_classifier`)."""
    if conditioning not in CONDITIONING:
        raise ValueError(f"model.conditioning={conditioning!r} is unknown; allowed: {', '.join(CONDITIONING)}")
    spec = dict(spec)
    pack = spec.pop("pack", 1)
    if isinstance(pack, bool) or not isinstance(pack, int) or pack < 1:
        raise ValueError(f"model.critic.pack={pack!r} is invalid; allowed: an integer >= 1 (1 = no packing)")
    if num_classes and pack > 1:
        raise ValueError(
            f"model.critic.pack={pack} is invalid with model.num_classes={num_classes} (a pack would mix the "
            "labels of its samples); allowed: model.critic.pack=1"
        )
    compiled = _check_minibatch_compile(spec.pop("minibatch_compile", False), spec.get("minibatch_kernels", 0))
    critic = _build(CRITICS, "critic", spec, packed_shape(tuple(data_shape), pack), common=CRITIC_OPTIONS)
    if compiled:
        critic.minibatch.compiled = True
    if num_classes:
        if not isinstance(critic, Critic):
            raise ValueError(
                f"model.critic.arch={spec.get('arch')!r} is invalid with model.num_classes={num_classes} (the "
                f"{conditioning} needs features and a linear head); allowed: mlp, dcgan, resnet, standard_cnn"
            )
        if conditioning == "projection":
            critic.add_projection(num_classes)
        else:
            critic.add_classifier(num_classes)
    return PackedCritic(critic, pack) if pack > 1 else critic


def _check_minibatch_compile(compiled: Any, kernels: Any) -> bool:
    """`minibatch_compile`: a switch, on a critic with minibatch discrimination, where torch.compile
    finds the C++ compiler its CPU kernels need (named now, not at the first critic step)."""
    if not isinstance(compiled, bool):
        raise ValueError(f"model.critic.minibatch_compile={compiled!r} is invalid; allowed: true, false")
    if not compiled:
        return False
    if not kernels:
        raise ValueError(
            f"model.critic.minibatch_compile=true is invalid with model.critic.minibatch_kernels={kernels!r} "
            "(there is no minibatch-discrimination layer to compile); allowed: false, or minibatch_kernels >= 1"
        )
    from torch._inductor.cpp_builder import get_cpp_compiler

    try:
        get_cpp_compiler()
    except Exception as err:  # inductor's own search (config.cpp.cxx, $CXX) and its reason
        reason = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise ValueError(
            f"model.critic.minibatch_compile=true needs the C++ compiler torch.compile builds CPU kernels with "
            f"({reason}); allowed: false, or install g++ / set $CXX"
        ) from None
    return True


__all__ = [
    "CRITICS",
    "GENERATORS",
    "INITS",
    "AutoencoderCritic",
    "Critic",
    "Generator",
    "MinibatchDiscrimination",
    "PackedCritic",
    "build_critic",
    "build_generator",
]
