"""Weight initialisation schemes of the reference codes, one function each (`init:` in a net's spec).

A paper's numbers come from its code's initial weights as much as from its architecture; with WGAN's
clipping the initial scale even decides how many weights start at the clipping bounds.
"""

from __future__ import annotations

import math
from collections.abc import Callable

from torch import nn

from gan_modules.nets.resnet import ResidualBlock

WEIGHT_LAYERS = (nn.Linear, nn.Conv2d, nn.ConvTranspose2d)
BATCH_NORMS = (nn.BatchNorm1d, nn.BatchNorm2d)


def default_init(net: nn.Module) -> None:
    """PyTorch's own layer initialisation (Kaiming-uniform weights with a = sqrt(5)), left as built."""


def dcgan_init(net: nn.Module) -> None:
    """DCGAN (Radford et al. 2016, Sec. 4): weights N(0, 0.02); BatchNorm gamma N(1, 0.02), beta 0.

    As `weights_init` in martinarjovsky/WassersteinGAN main.py and guojunq/lsgan lsgan.lua (conv and
    BatchNorm; their conv layers have no biases, so biases here start at 0, as the zero-bias ops of
    xudonmao/LSGAN ops.py). LSGAN's ops.py and chainer-gan-lib keep BatchNorm gamma at 1 and ops.py
    truncates the conv weights' normal at 2 sigma; both are this scheme up to those details.
    """
    for m in net.modules():
        if isinstance(m, WEIGHT_LAYERS):
            nn.init.normal_(m.weight, 0.0, 0.02)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, BATCH_NORMS) and m.affine:
            nn.init.normal_(m.weight, 1.0, 0.02)
            nn.init.zeros_(m.bias)


def glorot_init(net: nn.Module) -> None:
    """SNGAN's chainer code (pfnet-research/sngan_projection, {gen,dis}_models/resblocks.py and
    resnet_32.py / snresnet_32.py): Glorot-uniform weights, gain sqrt(2) on the two 3x3 convs of each
    residual block, gain 1 on shortcuts, the linear layers and the output conv; biases 0 (chainer's
    default). BatchNorm keeps gamma 1, beta 0, chainer's default too.

    WGAN-GP's tflib (igul222/improved_wgan_training, tflib/ops/conv2d.py, linear.py) is the same
    scheme: U[-sqrt(3) s, sqrt(3) s] with s = sqrt(4 / (fan_in + fan_out)) for `he_init` convs (the
    residual ones), sqrt(2 / (fan_in + fan_out)) for shortcuts, the output conv and linear layers.
    """
    residual = {id(conv) for block in net.modules() if isinstance(block, ResidualBlock) for conv in block.residual()}
    for m in net.modules():
        if isinstance(m, WEIGHT_LAYERS):
            nn.init.xavier_uniform_(m.weight, gain=math.sqrt(2) if id(m) in residual else 1.0)
            if m.bias is not None:
                nn.init.zeros_(m.bias)


INITS: dict[str, Callable[[nn.Module], None]] = {"default": default_init, "dcgan": dcgan_init, "glorot": glorot_init}


def initialise(net: nn.Module, scheme: str, role: str) -> nn.Module:
    """Apply `scheme` (a key of INITS) to a freshly built net, before any spectral normalisation."""
    if scheme not in INITS:
        raise ValueError(f"model.{role}.init={scheme!r} is unknown; allowed: {', '.join(INITS)}")
    INITS[scheme](net)
    return net
