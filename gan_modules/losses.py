"""Adversarial losses: pure functions of critic outputs (raw scores, never probabilities).

Each paper's objective lives in exactly one function here. Critic losses are minimised by the
critic, generator losses by the generator; all are batch means, so under DDP the all-reduced
gradient of per-rank means equals the gradient of the global-batch mean.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor


# --- Original GAN (Goodfellow et al. 2014, Eq. 1) --------------------------------------------------
def minimax_critic_loss(real: Tensor, fake: Tensor, real_label: float = 1.0) -> Tensor:
    """-E[log D(x)] - E[log(1 - D(G(z)))], D = sigmoid(score).

    `real_label` < 1 is one-sided label smoothing (Salimans et al. 2016, Sec. 3.4): the real target
    becomes e.g. 0.9 while fakes keep target 0.
    """
    target = torch.full_like(real, real_label)
    return F.binary_cross_entropy_with_logits(real, target) + F.softplus(fake).mean()


def minimax_generator_loss(fake: Tensor) -> Tensor:
    """E[log(1 - D(G(z)))] (saturating): log(1 - sigmoid(s)) = -softplus(s)."""
    return -F.softplus(fake).mean()


def non_saturating_generator_loss(fake: Tensor) -> Tensor:
    """-E[log D(G(z))] (Goodfellow 2014, Sec. 3): strong gradients when D rejects the fakes."""
    return F.softplus(-fake).mean()


# --- LSGAN (Mao et al. 2017, Eq. 2) ------------------------------------------------------------------
def least_squares_critic_loss(real: Tensor, fake: Tensor, a: float = 0.0, b: float = 1.0) -> Tensor:
    """1/2 E[(D(x) - b)^2] + 1/2 E[(D(G(z)) - a)^2]; a/b are the fake/real targets."""
    return 0.5 * (real - b).pow(2).mean() + 0.5 * (fake - a).pow(2).mean()


def least_squares_generator_loss(fake: Tensor, c: float = 1.0) -> Tensor:
    """1/2 E[(D(G(z)) - c)^2]. Codings: a=-1, b=1, c=0 (Eq. 8) or a=0, b=1, c=1 (Eq. 9)."""
    return 0.5 * (fake - c).pow(2).mean()


# --- WGAN (Arjovsky et al. 2017, Eq. 3 / Algorithm 1) ------------------------------------------------
def wasserstein_critic_loss(real: Tensor, fake: Tensor) -> Tensor:
    """E[f(G(z))] - E[f(x)]: minus the Kantorovich-Rubinstein estimate of W(P_r, P_g)."""
    return fake.mean() - real.mean()


def wasserstein_generator_loss(fake: Tensor) -> Tensor:
    """-E[f(G(z))]; also the generator loss of the hinge GAN (Miyato 2018, Eq. 17)."""
    return -fake.mean()


# --- Hinge (Lim & Ye 2017; Miyato et al. 2018, Eq. 16) -----------------------------------------------
def hinge_critic_loss(real: Tensor, fake: Tensor) -> Tensor:
    """E[max(0, 1 - D(x))] + E[max(0, 1 + D(G(z)))]."""
    return F.relu(1.0 - real).mean() + F.relu(1.0 + fake).mean()


# --- EBGAN (Zhao et al. 2017, Eq. 1-2 and Sec. 2.4) --------------------------------------------------
def ebgan_critic_loss(energy_real: Tensor, energy_fake: Tensor, margin: float) -> Tensor:
    """L_D = D(x) + [m - D(G(z))]^+ : fakes with energy above the margin contribute nothing."""
    return energy_real.mean() + F.relu(margin - energy_fake).mean()


def ebgan_generator_loss(energy_fake: Tensor) -> Tensor:
    """L_G = D(G(z))."""
    return energy_fake.mean()


def pulling_away_term(codes: Tensor) -> Tensor:
    """f_PT = 1/(N(N-1)) sum_{i != j} (S_i^T S_j / (|S_i| |S_j|))^2 on encoder codes of fakes."""
    n = codes.shape[0]
    if n < 2:
        raise ValueError(f"pulling_away_term needs a batch of at least 2 codes (it averages over pairs); got {n}")
    s = F.normalize(codes.flatten(1), dim=1)
    cos2 = (s @ s.T).pow(2)
    return (cos2.sum() - cos2.diagonal().sum()) / (n * (n - 1))


# --- Loss-Sensitive GAN (Qi 2017, the LS-GAN objective) --------------------------------------------
def loss_sensitive_critic_loss(loss_real: Tensor, loss_fake: Tensor, delta: Tensor, real_weight: float = 1.0) -> Tensor:
    """real_weight * E L(x) + E[(Delta(x, G(z)) + L(x) - L(G(z)))_+]: a real sample's loss must undercut
    a fake's by a margin that grows with how different they are.

    The paper writes E L(x) + lambda E[...]_+, i.e. real_weight = 1 / lambda up to a global scale; the
    authors' code weights E L(x) by `gamma` = 0 for unconditional LS-GAN ("the theorem shows this
    term can be ignored").
    """
    return real_weight * loss_real.mean() + F.relu(delta + loss_real - loss_fake).mean()


def loss_sensitive_generator_loss(loss_fake: Tensor) -> Tensor:
    """E L(G(z))."""
    return loss_fake.mean()


def l1_margin(real: Tensor, fake: Tensor, scale: float = 1.0) -> Tensor:
    """Delta(x, G(z)) = scale * ||x - G(z)||_1 per pair, summed over all non-batch dims.

    Qi 2017, Sec. 3 (Delta is a distance between samples, here L1); the authors' code
    (guojunq/lsgan, `lambda` = 0.0002 on 64x64x3 images) uses the same summed L1 distance.
    """
    return scale * (real - fake).abs().flatten(1).sum(1)


# --- f-GAN (Nowozin et al. 2016, Eq. 6 and Table 2) --------------------------------------------------
@dataclass(frozen=True)
class FDivergence:
    """One row of Nowozin 2016 Table 2.

    `f` is the generator function, `activation` the output activation g_f, `conjugate` the Fenchel
    conjugate f*; `conjugate_of_activation` is f*(g_f(v)) in a numerically stable closed form.
    """

    name: str
    f: Callable[[Tensor], Tensor]
    activation: Callable[[Tensor], Tensor]
    conjugate: Callable[[Tensor], Tensor]
    conjugate_of_activation: Callable[[Tensor], Tensor]


LOG2 = math.log(2.0)

DIVERGENCES: dict[str, FDivergence] = {
    d.name: d
    for d in (
        FDivergence(
            "kl", lambda u: u * torch.log(u), lambda v: v, lambda t: torch.exp(t - 1), lambda v: torch.exp(v - 1)
        ),
        FDivergence(
            "reverse_kl",
            lambda u: -torch.log(u),
            lambda v: -torch.exp(-v),
            lambda t: -1 - torch.log(-t),
            lambda v: v - 1,
        ),
        FDivergence(
            "pearson", lambda u: (u - 1).pow(2), lambda v: v, lambda t: t.pow(2) / 4 + t, lambda v: v.pow(2) / 4 + v
        ),
        FDivergence(
            "squared_hellinger",
            lambda u: (torch.sqrt(u) - 1).pow(2),
            lambda v: 1 - torch.exp(-v),
            lambda t: t / (1 - t),
            lambda v: torch.expm1(v),
        ),
        FDivergence(
            "js",
            lambda u: -(u + 1) * torch.log((1 + u) / 2) + u * torch.log(u),
            lambda v: LOG2 - F.softplus(-v),
            lambda t: -torch.log(2 - torch.exp(t)),
            lambda v: F.softplus(v) - LOG2,
        ),
        FDivergence(
            "gan",
            lambda u: u * torch.log(u) - (u + 1) * torch.log(u + 1),
            lambda v: -F.softplus(-v),
            lambda t: -torch.log(1 - torch.exp(t)),
            F.softplus,
        ),
    )
}


def get_divergence(name: str) -> FDivergence:
    if name not in DIVERGENCES:
        raise ValueError(f"model.loss.divergence={name!r} is unknown; allowed: {', '.join(DIVERGENCES)}")
    return DIVERGENCES[name]


def fgan_bound(real: Tensor, fake: Tensor, divergence: FDivergence) -> Tensor:
    """F(theta, omega) = E_P[g_f(V(x))] - E_Q[f*(g_f(V(x)))]: a lower bound on D_f(P || Q)."""
    return divergence.activation(real).mean() - divergence.conjugate_of_activation(fake).mean()


def fgan_critic_loss(real: Tensor, fake: Tensor, divergence: FDivergence) -> Tensor:
    """The variational function maximises the bound."""
    return -fgan_bound(real, fake, divergence)


def fgan_generator_loss(fake: Tensor, divergence: FDivergence, alternative: bool = True) -> Tensor:
    """Saddle form: minimise -E_Q[f*(g_f(V))]; alternative (Nowozin Sec. 3.2): maximise E_Q[g_f(V)]."""
    if alternative:
        return -divergence.activation(fake).mean()
    return -divergence.conjugate_of_activation(fake).mean()


# --- Top-k generator updates (Sinha et al. 2020, Algorithm 1) ---------------------------------------
def top_k_size(batch: int, iteration: int, gamma: float, nu: float, every: int) -> int:
    """k = B * max(gamma^e, nu) after e = iteration // every annealing periods, at least 1: k starts
    at the whole batch and shrinks by gamma every epoch, down to the fraction nu of it."""
    return max(1, int(batch * max(gamma ** (iteration // every), nu)))


def top_k_indices(scores: Tensor, k: int, lower_is_real: bool = False) -> Tensor:
    """The k fakes the critic rates most realistic: the highest scores, or the lowest where realistic
    inputs score low (energies, learned losses). Only their gradients reach the generator, because a
    critic's gradient at its worst-rated samples can push them away from the nearest mode."""
    return torch.topk(scores, k, largest=not lower_is_real, sorted=False).indices


# --- Feature matching (Salimans et al. 2016, Sec. 3.1) -----------------------------------------------
def feature_matching_loss(features_real: Tensor, features_fake: Tensor) -> Tensor:
    """||E f(x) - E f(G(z))||_2^2 on the critic's penultimate features."""
    return (features_real.detach().mean(0) - features_fake.mean(0)).pow(2).sum()


# --- AC-GAN (Odena et al. 2017, Eq. 2-3) -----------------------------------------------------------
def auxiliary_class_loss(logits: Tensor, labels: Tensor) -> Tensor:
    """-E[log P(C = c | X)]: minus one source's share of AC-GAN's L_C (Eq. 3) on the classifier's logits.

    The critic maximises L_C over real and generated samples (L_S + L_C, Eq. 2-3), the generator
    over its own samples (L_C - L_S), so each minimises a sum of these terms."""
    return F.cross_entropy(logits, labels)


# --- Named (critic, generator) pairs for variants that take "any loss" (e.g. SNGAN) -----------------
LOSS_PAIRS: dict[str, tuple[Callable[[Tensor, Tensor], Tensor], Callable[[Tensor], Tensor]]] = {
    "minimax": (minimax_critic_loss, minimax_generator_loss),
    "non_saturating": (minimax_critic_loss, non_saturating_generator_loss),
    "least_squares": (least_squares_critic_loss, least_squares_generator_loss),
    "wasserstein": (wasserstein_critic_loss, wasserstein_generator_loss),
    "hinge": (hinge_critic_loss, wasserstein_generator_loss),
}


def get_loss_pair(name: str) -> tuple[Callable[[Tensor, Tensor], Tensor], Callable[[Tensor], Tensor]]:
    if name not in LOSS_PAIRS:
        raise ValueError(f"model.loss={name!r} is unknown; allowed: {', '.join(LOSS_PAIRS)}")
    return LOSS_PAIRS[name]
