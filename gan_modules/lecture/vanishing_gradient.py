"""A well-trained sigmoid discriminator stops teaching the generator (Arjovsky & Bottou 2017,
Theorem 2.4 and Fig. 2); LSGAN (Mao et al. 2017, Sec. 3.2) and WGAN critics keep teaching it.

Real data: the ring of 8 Gaussians; fakes: a fixed blob off to the side, as from a generator that
has not found the data yet. Each critic is trained on these fixed clouds and, as it trains, we
measure the gradient the generator would receive: the per-sample norm ||d loss_G / d x|| at the
fakes (the generator's parameter gradient is this vector pushed through its Jacobian). The minimax
loss log(1 - sigmoid(s)) has derivative -sigmoid(s) in the logit s, which goes to 0 as the
discriminator becomes confident; the non-saturating loss (derivative -sigmoid(-s)) does not vanish,
nor do the least-squares loss (a ramp between the targets) and the Wasserstein loss (a critic
whose gradient norm is held near 1 by the penalty).

Caveat the numbers show: the *optimal* least-squares discriminator, (b p_data + a p_g) / (p_data + p_g),
is also flat on the fakes' support, so the LSGAN gradient does shrink as D trains; it levels off
many orders of magnitude above the minimax one because a network is a smooth ramp, not that optimum.
Only the Wasserstein critic's gradient is pinned (near 1) by its constraint.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import torch
from torch import Tensor, nn

from datamodules.toy2d import sample_mixture
from gan_modules import losses
from gan_modules.lecture import common
from gan_modules.nets import build_critic

NAME = "vanishing-gradient"
SIZES = {
    "small": {"steps": 300, "every": 50, "hidden": [64, 64], "n": 2000},
    "full": {"steps": 3000, "every": 100, "hidden": [128, 128, 128], "n": 10_000},
}
BATCH = 256
FAKE_CENTER, FAKE_STD = (2.5, 0.0), 0.2
GP_WEIGHT = 10.0  # Gulrajani et al. 2017, Algorithm 1

# generator losses, each judged by the critic it is trained against
GENERATOR_LOSSES: dict[str, tuple[str, Callable[[Tensor], Tensor]]] = {
    "minimax (sigmoid D)": ("sigmoid", losses.minimax_generator_loss),
    "non-saturating (sigmoid D)": ("sigmoid", losses.non_saturating_generator_loss),
    "least squares (LSGAN D)": ("least_squares", losses.least_squares_generator_loss),
    "Wasserstein (WGAN-GP critic)": ("wasserstein", losses.wasserstein_generator_loss),
}


def fake_blob(n: int, gen: torch.Generator) -> Tensor:
    return torch.tensor(FAKE_CENTER) + FAKE_STD * torch.randn(n, 2, generator=gen)


def generator_gradient_norm(critic: nn.Module, loss: Callable[[Tensor], Tensor], fakes: Tensor) -> float:
    """Mean over fakes of ||d loss_G / d x_i||, undoing the batch mean (per-sample gradients)."""
    x = fakes.detach().requires_grad_(True)
    (grad,) = torch.autograd.grad(loss(critic(x)), x)
    return float((grad * len(x)).norm(dim=1).mean())


def objectives(seed: int) -> dict[str, common.CriticObjective]:
    return {
        "sigmoid": common.plain_objective(losses.minimax_critic_loss),
        "least_squares": common.plain_objective(losses.least_squares_critic_loss),
        "wasserstein": common.gradient_penalty_objective(losses.wasserstein_critic_loss, GP_WEIGHT, seed),
    }


@common.one_thread()
def run(size: str = "full", out_dir: str | Path = common.DEFAULT_OUT, seed: int = 0) -> dict:
    p = common.pick(SIZES, size)
    gen = torch.Generator().manual_seed(seed)
    real, fake = sample_mixture("ring8", p["n"], seed), fake_blob(p["n"], gen)
    probe_fakes = fake_blob(1000, gen)  # held-out fakes where the generator's gradient is measured

    curves: dict[str, list[float]] = {name: [] for name in GENERATOR_LOSSES}
    critics: dict[str, nn.Module] = {}
    for kind, objective in objectives(seed).items():
        torch.manual_seed(seed)
        critic = build_critic({"arch": "mlp", "hidden": p["hidden"]}, (2,))
        judged = [name for name, (k, _) in GENERATOR_LOSSES.items() if k == kind]

        def probe(step: int, critic: nn.Module = critic, judged: list[str] = judged) -> None:
            for name in judged:
                curves[name].append(generator_gradient_norm(critic, GENERATOR_LOSSES[name][1], probe_fakes))

        critics[kind] = common.train_critic(
            critic, objective, real, fake, p["steps"], BATCH, seed, every=p["every"], probe=probe
        )

    with torch.no_grad():
        d_fake = float(torch.sigmoid(critics["sigmoid"](probe_fakes)).mean())
    result = {
        "steps": [*range(0, p["steps"], p["every"]), p["steps"]],  # when train_critic probes
        "curves": curves,
        "initial": {name: c[0] for name, c in curves.items()},
        "final": {name: c[-1] for name, c in curves.items()},
        "sigmoid_D_at_fakes": d_fake,
    }
    common.print_table(
        f"{NAME}: per-sample generator gradient norm ||d loss_G / dx|| at the fakes",
        ["generator loss", "before D training", f"after {p['steps']} D steps"],
        [[name, result["initial"][name], result["final"][name]] for name in GENERATOR_LOSSES],
    )
    print(f"  trained sigmoid D: mean D(fake) = {d_fake:.3g}")
    result["figure"] = str(plot(result, critics["sigmoid"], real, fake, out_dir))
    print(f"  figure -> {result['figure']}")
    return result


def plot(result: dict, sigmoid_critic: nn.Module, real: Tensor, fake: Tensor, out_dir: str | Path) -> Path:
    fig, (ax_curve, ax_field) = common.new_figure(2)
    for name, curve in result["curves"].items():
        ax_curve.semilogy(result["steps"], curve, label=name)
    ax_curve.set(
        title="Generator gradient at the fakes while D trains", xlabel="discriminator steps", ylabel="mean ||dL_G/dx||"
    )
    ax_curve.legend(fontsize=8)

    gx, gy, grid = common.plane_grid((-1.8, 3.5), (-2.0, 2.0), 200)
    with torch.no_grad():
        prob = torch.sigmoid(sigmoid_critic(grid)).view_as(gx)
    mesh = ax_field.pcolormesh(gx, gy, prob, cmap="RdBu_r", vmin=0, vmax=1, shading="auto")
    fig.colorbar(mesh, ax=ax_field, label="D(x) = sigmoid(score)")
    ax_field.scatter(real[:500, 0], real[:500, 1], s=3, color="black", label="real (ring8)")
    ax_field.scatter(fake[:500, 0], fake[:500, 1], s=3, color="tab:orange", label="fakes")
    ax_field.set(title="Trained sigmoid D: flat at 0 over the fakes", xlabel="x", ylabel="y", aspect="equal")
    ax_field.legend(loc="upper left", fontsize=8)
    return common.save_figure(fig, out_dir, NAME)
