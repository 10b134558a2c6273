"""The layers that carry a class label through the networks.

Generator: conditional BatchNorm (de Vries et al. 2017, "Modulating early visual processing by
language"; Miyato & Koyama 2018, "cGANs with Projection Discriminator", its generators): BatchNorm
without its own affine, then a gain and a bias looked up per class; optionally the label also enters with
the noise (`LabelInput`, AC-GAN's one-hot code). Critic: the projection
discriminator's inner product of a class embedding with the penultimate features (Miyato & Koyama
2018, Eq. 3), added in `Critic.score`, or AC-GAN's auxiliary classifier head (Odena et al. 2017),
`Critic.class_logits`. Losses and regularisers read a critic of one input, so the
engine hands them `LabelledCritic`: the critic with the labels of the batch held fixed.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn


class Conditioned(nn.Module):
    """A layer whose forward takes the labels too: `forward(x, y)`."""


def call_with_labels(layer: nn.Module, x: Tensor, y: Tensor | None) -> Tensor:
    """`layer(x, y)` for a `Conditioned` layer, `layer(x)` for any other."""
    return layer(x, y) if isinstance(layer, Conditioned) else layer(x)


class LabelledSequential(nn.Sequential, Conditioned):
    """nn.Sequential (same parameter names) that hands the labels to its `Conditioned` layers; an
    unconditional net built from it computes exactly what nn.Sequential would."""

    def forward(self, x: Tensor, y: Tensor | None = None) -> Tensor:
        for layer in self:
            x = call_with_labels(layer, x, y)
        return x


class ConditionalBatchNorm(Conditioned):
    """normalise(x) * gain[y] + bias[y], per channel, with gain initialised to 1 and bias to 0 (de Vries
    et al. 2017's conditional BatchNorm with one gain and bias per class, as Miyato & Koyama 2018 use it).

    `normalise` is a BatchNorm without affine; `nn.Identity()` leaves the per-class gain and bias alone
    (FiLM, Perez et al. 2018), which conditions nets built without BatchNorm (the MLP generator's
    default) while keeping every sample independent of its batch.
    """

    def __init__(self, normalise: nn.Module, features: int, num_classes: int) -> None:
        super().__init__()
        self.normalise = normalise
        self.gain = nn.Embedding(num_classes, features)
        self.bias = nn.Embedding(num_classes, features)
        nn.init.ones_(self.gain.weight)
        nn.init.zeros_(self.bias.weight)

    def forward(self, x: Tensor, y: Tensor) -> Tensor:
        shape = (len(x), -1, *([1] * (x.dim() - 2)))  # one value per (sample, channel)
        return self.normalise(x) * self.gain(y).view(shape) + self.bias(y).view(shape)


class LabelInput(Conditioned):
    """G([z, one_hot(y)], y): the label enters with the noise as well as through the net's conditional
    BatchNorm (AC-GAN's generator input, Odena et al. 2017, Sec. 3 and appendix tables; the conditional
    GAN of Mirza & Osindero 2014, Sec. 3.2). Gains and biases per channel alone condition slowly: a
    digits AC-GAN with them alone put 89% of its samples in another class after 3,000 iterations, with
    this input 0.6% (docs/conditional.md)."""

    def __init__(self, net: nn.Module, num_classes: int) -> None:
        super().__init__()
        self.net, self.num_classes = net, num_classes

    def forward(self, z: Tensor, y: Tensor) -> Tensor:
        return self.net(torch.cat([z, F.one_hot(y, self.num_classes).to(z.dtype)], dim=1), y)


def projection(features: Tensor, embedded: Tensor) -> Tensor:
    """<embed(y), phi(x)> per sample: the class term of the projection discriminator
    f(x, y) = psi(phi(x)) + y^T V phi(x) (Miyato & Koyama 2018, Eq. 3)."""
    return (embedded * features).sum(dim=1)


def projection_embedding(num_classes: int, feature_dim: int) -> nn.Embedding:
    """V of Eq. 3, Glorot-uniform as in the authors' code (pfnet-research/sngan_projection,
    dis_models/snresnet_32.py: `SNEmbedID(n_classes, ch, initialW=GlorotUniform())`)."""
    embed = nn.Embedding(num_classes, feature_dim)
    nn.init.xavier_uniform_(embed.weight)
    return embed


class LabelledCritic(nn.Module):
    """The critic with the labels y of one batch held fixed, x -> D(x, y), read the ways losses,
    regularisers and generator terms read a critic (scores, penultimate features, scores of features),
    so they stay functions of a critic of one input; a penalty's input gradient is then the gradient
    w.r.t. the image at its own label."""

    def __init__(self, critic: nn.Module, labels: Tensor) -> None:
        super().__init__()
        self.critic, self.labels = critic, labels

    def forward(self, x: Tensor) -> Tensor:
        return self.critic(x, self.labels)

    def features(self, x: Tensor) -> Tensor:
        return self.critic.features(x)

    def score(self, features: Tensor) -> Tensor:
        return self.critic.score(features, self.labels)

    def class_logits(self, features: Tensor) -> Tensor:
        return self.critic.class_logits(features)


def uniform_labels(num_classes: int, n: int, generator: torch.Generator) -> Tensor:
    """n class labels, each uniform over 0 .. num_classes - 1."""
    return torch.randint(num_classes, (n,), generator=generator)
