"""gan-lab: GAN variants as thin LightningModules over one adversarial engine."""

from gan_modules.engine import AdversarialModule, NonFiniteLossError
from gan_modules.runtime import drop_nvml_check_without_gpu
from gan_modules.variants import (
    DRAGAN,
    EBGAN,
    FGAN,
    GAN,
    LSGAN,
    NSGAN,
    SNGAN,
    VARIANTS,
    WGAN,
    WGANCT,
    WGANGP,
    LossSensitiveGAN,
)

drop_nvml_check_without_gpu()  # every entry point (CLI, notebooks, tests) imports the package

__all__ = [
    "DRAGAN",
    "EBGAN",
    "FGAN",
    "GAN",
    "LSGAN",
    "NSGAN",
    "SNGAN",
    "VARIANTS",
    "WGAN",
    "WGANCT",
    "WGANGP",
    "AdversarialModule",
    "LossSensitiveGAN",
    "NonFiniteLossError",
]
