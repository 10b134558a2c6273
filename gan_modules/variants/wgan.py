"""The Wasserstein family: WGAN (weight clipping), WGAN-GP, DRAGAN's data-region penalty, WGAN-CT."""

from __future__ import annotations

from typing import Any

from torch import Tensor

from gan_modules import losses, penalties
from gan_modules.constraints import clip_weights
from gan_modules.engine import AdversarialModule, Logs, _check


class WGAN(AdversarialModule):
    """Arjovsky et al. 2017, Algorithm 1: linear critic output, weights clipped to [-c, c] after
    every critic step, RMSProp 5e-5, n_critic 5."""

    def __init__(
        self,
        clip: float = 0.01,
        n_critic: int = 5,
        optimizer: str = "rmsprop",
        lr_g: float = 5e-5,
        lr_d: float = 5e-5,
        **kwargs: Any,
    ) -> None:
        _check(clip > 0, "model.clip", clip, "a float > 0")
        super().__init__(n_critic=n_critic, optimizer=optimizer, lr_g=lr_g, lr_d=lr_d, **kwargs)
        self.clip = clip
        clip_weights(self.critic, clip)  # Algorithm 1 keeps w in [-c, c] from the start

    def critic_loss(self, real: Tensor, fake: Tensor) -> tuple[Tensor, Logs]:
        loss = losses.wasserstein_critic_loss(self.critic(real), self.critic(fake))
        return loss, {"train/wasserstein_estimate": -loss.detach()}

    def generator_loss(self, fake: Tensor, real: Tensor) -> tuple[Tensor, Logs]:
        return losses.wasserstein_generator_loss(self.critic(fake)), {}

    def after_critic_step(self) -> None:
        clip_weights(self.critic, self.clip)


class WGANGP(AdversarialModule):
    """Gulrajani et al. 2017, Algorithm 1: lambda 10, Adam 1e-4 (0, 0.9), n_critic 5, no clipping."""

    def __init__(
        self,
        gp_weight: float = 10.0,
        one_sided: bool = False,
        n_critic: int = 5,
        lr_g: float = 1e-4,
        lr_d: float = 1e-4,
        betas: tuple[float, float] = (0.0, 0.9),
        **kwargs: Any,
    ) -> None:
        _check(gp_weight >= 0, "model.gp_weight", gp_weight, "a float >= 0")
        super().__init__(n_critic=n_critic, lr_g=lr_g, lr_d=lr_d, betas=betas, **kwargs)
        self.gp_weight, self.one_sided = gp_weight, one_sided

    def wasserstein_terms(self, real: Tensor, fake: Tensor) -> tuple[Tensor, Logs]:
        loss = losses.wasserstein_critic_loss(self.critic(real), self.critic(fake))
        gp = penalties.gradient_penalty(self.penalty_critic, real, fake, self.uniform(len(real)), self.one_sided)
        return loss + self.gp_weight * gp, {
            "train/wasserstein_estimate": -loss.detach(),
            "train/gradient_penalty": gp.detach(),
        }

    critic_loss = wasserstein_terms

    def generator_loss(self, fake: Tensor, real: Tensor) -> tuple[Tensor, Logs]:
        return losses.wasserstein_generator_loss(self.critic(fake)), {}


class WGANCT(WGANGP):
    """Wei et al. 2018: WGAN-GP plus lambda_2 * CT on two dropout passes over the real batch.

    Defaults are the authors' (CT_gan_mnist.py / CT_gan_cifar_resnet.py): lambda_2 = 2, M' = 0,
    the second-to-last layer weighted 0.1, squared distances (`ct_distance`, see
    `penalties.consistency_term`). The critic needs dropout (e.g. `critic: {dropout: 0.5}`), which
    is active in every critic pass (loss, penalty, generator step), as in the authors' code.
    """

    def __init__(
        self,
        ct_weight: float = 2.0,
        ct_margin: float = 0.0,
        ct_feature_weight: float = 0.1,
        ct_distance: str = "squared",
        **kwargs: Any,
    ) -> None:
        _check(ct_distance in penalties.CT_DISTANCES, "model.ct_distance", ct_distance, "squared, euclidean")
        dropout = (kwargs.get("critic") or {}).get("dropout", 0.0)
        _check(
            max(dropout if isinstance(dropout, (list, tuple)) else [dropout]) > 0,
            "model.critic.dropout",
            dropout,
            "a float > 0 (the consistency term compares two dropout passes)",
        )
        _check(ct_weight >= 0, "model.ct_weight", ct_weight, "a float >= 0")
        _check(ct_margin >= 0, "model.ct_margin", ct_margin, "a float >= 0")
        super().__init__(**kwargs)
        self.ct_weight, self.ct_margin = ct_weight, ct_margin
        self.ct_feature_weight, self.ct_distance = ct_feature_weight, ct_distance

    def critic_loss(self, real: Tensor, fake: Tensor) -> tuple[Tensor, Logs]:
        loss, logs = self.wasserstein_terms(real, fake)
        ct = penalties.consistency_term(self.critic, real, self.ct_margin, self.ct_feature_weight, self.ct_distance)
        return loss + self.ct_weight * ct, {**logs, "train/consistency_term": ct.detach()}


class DRAGAN(AdversarialModule):
    """Kodali et al. 2017: the GAN critic loss plus lambda (||grad D(x_hat)|| - 1)^2 at points x_hat
    near the real data, non-saturating generator; lambda 10, Adam 1e-4 (0.5, 0.9), one critic step
    per generator step, as in the authors' reference notebook (kodalinaveen3/DRAGAN)."""

    def __init__(
        self,
        penalty_weight: float = 10.0,
        lr_g: float = 1e-4,
        lr_d: float = 1e-4,
        betas: tuple[float, float] = (0.5, 0.9),
        **kwargs: Any,
    ) -> None:
        _check(penalty_weight >= 0, "model.penalty_weight", penalty_weight, "a float >= 0")
        super().__init__(lr_g=lr_g, lr_d=lr_d, betas=betas, **kwargs)
        self.penalty_weight = penalty_weight

    def critic_loss(self, real: Tensor, fake: Tensor) -> tuple[Tensor, Logs]:
        loss = losses.minimax_critic_loss(self.critic(real), self.critic(fake))
        pen = penalties.dragan_penalty(self.penalty_critic, real, self.uniform(*real.shape), self.uniform(len(real)))
        return loss + self.penalty_weight * pen, {"train/dragan_penalty": pen.detach()}

    def generator_loss(self, fake: Tensor, real: Tensor) -> tuple[Tensor, Logs]:
        return losses.non_saturating_generator_loss(self.critic(fake)), {}
