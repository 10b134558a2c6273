"""Critic regularisers: pure functions of (critic, real, fake[, random draws]) -> scalar.

Random draws (interpolation weights, perturbations) are arguments, not sampled inside, so that the
caller can make them a function of the *global* batch: under DDP each rank then uses exactly its
slice of the draws a single process would make, and results match across world sizes.

DDP note (pytorch/pytorch#47562, #63812): the penalties differentiate w.r.t. *inputs* with
`torch.autograd.grad(create_graph=True)`; that call runs no parameter AccumulateGrad hooks, so
DDP's reducer is untouched until the single `backward` of (loss + penalty), in which each
parameter's gradient (first- and second-order parts together) is produced exactly once and
all-reduced once. The sound pattern is therefore: compute every critic term inside the same
training_step, call `torch.autograd.grad` only w.r.t. inputs, and backward the summed loss once.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import Tensor, nn


def input_gradient_norm(critic: Callable[[Tensor], Tensor], x: Tensor) -> Tensor:
    """||grad_x D(x)||_2 per sample, over all non-batch dims, differentiable (create_graph)."""
    x = x.detach().requires_grad_(True)
    (grad,) = torch.autograd.grad(critic(x).sum(), x, create_graph=True)
    return grad.flatten(1).norm(2, dim=1)


def interpolate(real: Tensor, fake: Tensor, eps: Tensor) -> Tensor:
    """x_hat = eps * x + (1 - eps) * x_tilde with one eps ~ U[0, 1] per sample (WGAN-GP Alg. 1)."""
    eps = eps.view(-1, *([1] * (real.dim() - 1)))
    return eps * real.detach() + (1 - eps) * fake.detach()


def gradient_penalty(
    critic: Callable[[Tensor], Tensor], real: Tensor, fake: Tensor, eps: Tensor, one_sided: bool = False
) -> Tensor:
    """WGAN-GP (Gulrajani et al. 2017, Eq. 3): E[(||grad D(x_hat)|| - 1)^2] on random interpolates.

    `one_sided` gives E[max(0, ||grad|| - 1)^2], which only penalises norms above 1: the form the
    WGAN-GP paper contrasts in Sec. 4 ("two-sided penalty") and that Petzka et al. 2018 (WGAN-LP)
    advocate, since a 1-Lipschitz critic needs norms <= 1, not = 1.
    """
    norms = input_gradient_norm(critic, interpolate(real, fake, eps))
    excess = F.relu(norms - 1) if one_sided else norms - 1
    return excess.pow(2).mean()


def dragan_penalty(critic: Callable[[Tensor], Tensor], real: Tensor, noise: Tensor, alpha: Tensor) -> Tensor:
    """DRAGAN (Kodali et al. 2017): the gradient penalty around the data, not between data and fakes.

    x_p = x + 0.5 * std(x) * u with u ~ U[0, 1) elementwise (`noise`), then x_hat = x + alpha (x_p - x)
    with one alpha ~ U[0, 1) per sample, penalty E[(||grad D(x_hat)|| - 1)^2]. This is the authors'
    reference (kodalinaveen3/DRAGAN, DRAGAN.ipynb): `get_perturbed_batch` is
    `minibatch + 0.5 * minibatch.std() * np.random.random(minibatch.shape)`, so u is U[0, 1) (not
    U[-1, 1] nor normal) and std is numpy's: one scalar over the whole batch, population form (ddof 0);
    alpha is `tf.random_uniform([mb_size, 1], 0, 1)`.
    """
    real = real.detach()
    perturbed = real + 0.5 * real.std(correction=0) * noise
    alpha = alpha.view(-1, *([1] * (real.dim() - 1)))
    norms = input_gradient_norm(critic, real + alpha * (perturbed - real))
    return (norms - 1).pow(2).mean()


CT_DISTANCES = ("squared", "euclidean")


def consistency_term(
    critic: nn.Module,
    real: Tensor,
    margin: float = 0.0,
    feature_weight: float = 0.1,
    distance: str = "squared",
) -> Tensor:
    """WGAN-CT (Wei et al. 2018, Sec. 3, "CT"): two stochastic (dropout) passes x', x'' over the same
    real batch must agree, E[max(0, d(D(x'), D(x'')) + 0.1 d(D_(x'), D_(x'')) - M')], D_ being the
    second-to-last layer (the critic's `features`).

    `distance`:
      "squared"   (D(x') - D(x''))^2 + 0.1 * mean_k (D_k(x') - D_k(x''))^2: the authors' code
                  (biuyq/CT-GAN, CT_gan_mnist.py / CT_gan_cifar_resnet.py), which produced the
                  paper's numbers;
      "euclidean" |D(x') - D(x'')| + 0.1 * ||D_(x') - D_(x'')||_2: d read as the Euclidean metric of
                  the paper's Lipschitz argument.
    The critic needs dropout; its masks come from torch's RNG (no global-batch draw exists for them).
    """
    if distance not in CT_DISTANCES:
        raise ValueError(f"model.ct_distance={distance!r} is unknown; allowed: {', '.join(CT_DISTANCES)}")
    f1, f2 = critic.features(real), critic.features(real)
    s1, s2 = critic.score(f1), critic.score(f2)
    if distance == "squared":
        d = (s1 - s2).pow(2) + feature_weight * (f1 - f2).pow(2).mean(1)
    else:
        d = (s1 - s2).abs() + feature_weight * (f1 - f2).norm(2, dim=1)
    return F.relu(d - margin).mean()


def r1_penalty(critic: Callable[[Tensor], Tensor], real: Tensor) -> Tensor:
    """R1 (Mescheder et al. 2018, Eq. 9) without the gamma/2 factor: E ||grad D(x)||^2 on real data."""
    return input_gradient_norm(critic, real).pow(2).mean()
