"""The two shapes every network in the zoo has."""

from __future__ import annotations

import torch
from torch import nn

from gan_modules.nets.conditional import ConditionalBatchNorm, projection, projection_embedding
from gan_modules.nets.minibatch import MinibatchDiscrimination


class Generator(nn.Module):
    """Maps noise (N, z_dim), and with `num_classes` > 0 labels (N,), to samples (N, *data_shape)."""

    def __init__(self, z_dim: int, data_shape: tuple[int, ...], num_classes: int = 0) -> None:
        super().__init__()
        self.z_dim = z_dim
        self.data_shape = tuple(data_shape)
        self.num_classes = num_classes

    def norm(self, features: int, batch_norm: type[nn.Module] | None) -> nn.Module:
        """The generator's normalisation layer: `batch_norm(features)` (nn.BatchNorm1d / 2d), or with
        labels its conditional form (`ConditionalBatchNorm`; None: the per-class gain and bias alone)."""
        if not self.num_classes:
            return batch_norm(features)
        normalise = nn.Identity() if batch_norm is None else batch_norm(features, affine=False)
        return ConditionalBatchNorm(normalise, features, self.num_classes)


class Critic(nn.Module):
    """Scores samples: `features` (N, F) then a linear `head` to one score per sample, plus, for a
    class-conditional critic, the projection term <embed(y), features> (Miyato & Koyama 2018, Eq. 3)
    or a K-way `classifier` head beside the score (AC-GAN's auxiliary classifier; Odena et al. 2017).

    Keeping the penultimate features separate serves feature matching (Salimans 2016), minibatch
    discrimination (inserted between the two), WGAN-CT's second-to-last-layer term and the projection.
    """

    def __init__(self, data_shape: tuple[int, ...]) -> None:
        super().__init__()
        self.data_shape = tuple(data_shape)
        self.head: nn.Module = nn.Identity()
        self.minibatch: nn.Module = nn.Identity()
        self.feature_dim = 0
        self.embed: nn.Embedding | None = None
        self.classifier: nn.Linear | None = None

    def set_head(self, feature_dim: int, minibatch_kernels: int = 0, bias: bool = True) -> None:
        """Attach the scoring head (and optional minibatch discrimination) after `features`."""
        self.feature_dim = feature_dim
        if minibatch_kernels:
            self.minibatch = MinibatchDiscrimination(feature_dim, minibatch_kernels)
            feature_dim = self.minibatch.out_features
        self.head = nn.Linear(feature_dim, 1, bias=bias)

    def add_projection(self, num_classes: int) -> None:
        """Make the critic class-conditional: f(x, y) = head(phi(x)) + <embed(y), phi(x)>, phi = `features`."""
        self.embed = projection_embedding(num_classes, self.feature_dim)

    def add_classifier(self, num_classes: int) -> None:
        """Make the critic an AC-GAN discriminator: the score ignores y and a linear head on the same
        features gives the class posterior's logits (Odena et al. 2017, Sec. 3: "an auxiliary decoder
        network that outputs the class labels")."""
        self.classifier = nn.Linear(self.feature_dim, num_classes)

    def class_logits(self, features: torch.Tensor) -> torch.Tensor:
        """log P(C | x) up to a constant, from penultimate `features` (an AC-GAN critic only)."""
        if self.classifier is None:
            raise ValueError("class logits were asked of a critic without a classifier head")
        return self.classifier(features)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def score(self, features: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        """The scores of penultimate `features`; with labels y, the projection term added (y is None:
        the unconditional part, e.g. for a plot of the critic over the plane). An AC-GAN critic's
        score reads no label: y conditions its classifier's loss only."""
        out = self.head(self.minibatch(features)).squeeze(-1)
        if y is None or (self.embed is None and self.classifier is not None):
            return out
        if self.embed is None:
            raise ValueError("labels were given to a critic without a projection (model.num_classes=0)")
        return out + projection(features, self.embed(y))

    def forward(self, x: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        return self.score(self.features(x), y)


class InputTransformCritic(nn.Module):
    """A critic that scores `transform(x)` with `inner` in every way a critic is read (scores, with
    labels too, penultimate features and their scores, EBGAN's energy and code), so losses,
    regularisers and generator terms see one critic whatever wraps it (PacGAN's packing, DiffAugment)."""

    def __init__(self, inner: nn.Module) -> None:
        super().__init__()
        self.inner = inner

    def transform(self, x: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def forward(self, x: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        return self.inner(self.transform(x)) if y is None else self.inner(self.transform(x), y)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        return self.inner.features(self.transform(x))

    def score(self, features: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        return self.inner.score(features, y)

    def class_logits(self, features: torch.Tensor) -> torch.Tensor:
        return self.inner.class_logits(features)

    def energy_and_code(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.inner.energy_and_code(self.transform(x))
