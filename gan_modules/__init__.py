"""gan-lab: GAN variants as thin LightningModules over one adversarial engine."""

from gan_modules.engine import AdversarialModule, NonFiniteLossError
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
