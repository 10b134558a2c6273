"""EBGAN (Zhao et al. 2017): an autoencoder critic whose reconstruction error is an energy."""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from gan_modules import losses
from gan_modules.engine import AdversarialModule, Logs, _check


class EBGAN(AdversarialModule):
    """Critic: D(x) + [m - D(G(z))]^+ (Eq. 1); generator: D(G(z)) (Eq. 2) + pt_weight * f_PT
    (Sec. 2.4; the paper's EBGAN-PT runs weight it 0.1).

    The energy D(x) is the autoencoder's per-sample mean squared reconstruction error, so the margin
    m lives on that scale (the paper's ||Dec(Enc(x)) - x|| is a different scale; m must be re-tuned
    per dataset either way, as the paper's grid searches do).

    `pretrain_steps` > 0 first trains the autoencoder alone to reconstruct real data (the paper's
    Sec. 2.3 motivation: an auto-encoder critic can be trained without fakes), consuming real
    batches but no generator iterations. Progress is a buffer, so a resumed run does not pretrain
    twice.
    """

    def __init__(self, margin: float = 1.0, pt_weight: float = 0.1, pretrain_steps: int = 0, **kwargs: Any) -> None:
        critic = {"arch": "autoencoder", **(kwargs.get("critic") or {})}
        _check(
            critic["arch"] == "autoencoder",
            "model.critic.arch",
            critic["arch"],
            "autoencoder (energy = reconstruction error)",
        )
        _check(margin > 0, "model.margin", margin, "a float > 0")
        _check(pretrain_steps >= 0, "model.pretrain_steps", pretrain_steps, "an integer >= 0")
        kwargs["critic"] = critic
        super().__init__(**kwargs)  # plain **kwargs: jsonargparse follows it to the engine's signature
        _check(
            pretrain_steps == 0 or self.iterations_per_batch == 1,
            "model.iterations_per_batch",
            self.iterations_per_batch,
            "1 with model.pretrain_steps > 0 (pretraining batches do not fill whole generator iterations)",
        )
        self.margin, self.pt_weight, self.pretrain_steps = margin, pt_weight, pretrain_steps
        self.register_buffer("pretrain_done", torch.zeros((), dtype=torch.long))

    def train_on_real_batch(self, real: Tensor) -> None:
        if int(self.pretrain_done) < self.pretrain_steps:
            self.critic_update(self.critic(real).mean())
            self.pretrain_done += 1
            return
        super().train_on_real_batch(real)

    def critic_loss(self, real: Tensor, fake: Tensor) -> tuple[Tensor, Logs]:
        e_real, e_fake = self.critic(real), self.critic(fake)
        logs = {"train/energy_real": e_real.mean().detach(), "train/energy_fake": e_fake.mean().detach()}
        return losses.ebgan_critic_loss(e_real, e_fake, self.margin), logs

    def generator_loss(self, fake: Tensor, real: Tensor) -> tuple[Tensor, Logs]:
        energy, code = self.critic.energy_and_code(fake)
        pt = losses.pulling_away_term(code)
        return losses.ebgan_generator_loss(energy) + self.pt_weight * pt, {"train/pulling_away": pt.detach()}
