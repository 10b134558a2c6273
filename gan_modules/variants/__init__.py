"""Thin variants: each composes `losses` and `penalties` over the shared engine."""

from gan_modules.variants.ebgan import EBGAN
from gan_modules.variants.fgan import FGAN
from gan_modules.variants.gan import GAN, NSGAN
from gan_modules.variants.loss_sensitive import LossSensitiveGAN
from gan_modules.variants.lsgan import LSGAN
from gan_modules.variants.sngan import SNGAN
from gan_modules.variants.wgan import DRAGAN, WGAN, WGANCT, WGANGP

VARIANTS = {
    "gan": GAN,
    "ns_gan": NSGAN,
    "lsgan": LSGAN,
    "wgan": WGAN,
    "wgan_gp": WGANGP,
    "dragan": DRAGAN,
    "wgan_ct": WGANCT,
    "sngan": SNGAN,
    "ebgan": EBGAN,
    "loss_sensitive_gan": LossSensitiveGAN,
    "fgan": FGAN,
}

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
    "LossSensitiveGAN",
]
