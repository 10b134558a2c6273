"""Loss-Sensitive GAN (Qi 2017): a learned loss L with a data-dependent margin Delta(x, G(z))."""

from __future__ import annotations

from typing import Any

import torch.nn.functional as F
from torch import Tensor

from gan_modules import losses
from gan_modules.engine import AdversarialModule, Logs, _check

LOSS_ACTIVATIONS = {"relu": F.relu, "softplus": F.softplus}


class LossSensitiveGAN(AdversarialModule):
    """Critic (the learned loss L): real_weight * E L(x) + E[(Delta(x, G(z)) + L(x) - L(G(z)))_+];
    generator: E L(G(z)); Delta = delta_scale * ||x - G(z)||_1, each real sample paired with one fake.

    real_weight = 1 is the paper's objective with lambda = 1 (real_weight = 1 / lambda in general);
    the authors' released code uses 0 ("gamma"; the theorem shows the term can be dropped), which the
    shipped configs follow.

    L = loss_activation(critic score) >= 0: with real_weight > 0 an unconstrained L is unbounded below
    (a constant shift lowers E L(x) and leaves the hinge unchanged), and the paper's L is a
    non-negative loss. The authors end the loss network in a ReLU; softplus is the default here
    because a ReLU output is dead wherever all initial scores are negative (on ring8 the generator
    then never receives a gradient). With softplus and a large real_weight, E L(x) keeps pulling all
    scores towards -inf where the hinge's gradient fades (on ring8, real_weight 1 stalls while 0.1 and
    0 train well). The paper's extra Lipschitz condition on L (weight decay, 0 by default in the
    authors' code) is not imposed.
    """

    def __init__(
        self,
        real_weight: float = 1.0,
        delta_scale: float = 1.0,
        loss_activation: str = "softplus",
        **kwargs: Any,
    ) -> None:
        _check(real_weight >= 0, "model.real_weight", real_weight, "a float >= 0")
        _check(delta_scale > 0, "model.delta_scale", delta_scale, "a float > 0")
        _check(loss_activation in LOSS_ACTIVATIONS, "model.loss_activation", loss_activation, "relu, softplus")
        super().__init__(**kwargs)
        self.real_weight, self.delta_scale = real_weight, delta_scale
        self.activation = LOSS_ACTIVATIONS[loss_activation]

    def learned_loss(self, x: Tensor) -> Tensor:
        return self.activation(self.critic(x))

    def critic_loss(self, real: Tensor, fake: Tensor) -> tuple[Tensor, Logs]:
        delta = losses.l1_margin(real, fake, self.delta_scale)
        loss_real, loss_fake = self.learned_loss(real), self.learned_loss(fake)
        loss = losses.loss_sensitive_critic_loss(loss_real, loss_fake, delta, self.real_weight)
        return loss, {"train/margin": delta.mean().detach(), "train/loss_gap": (loss_fake - loss_real).mean().detach()}

    def generator_loss(self, fake: Tensor, real: Tensor) -> tuple[Tensor, Logs]:
        return losses.loss_sensitive_generator_loss(self.learned_loss(fake)), {}
