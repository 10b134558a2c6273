"""JS saturates, EMD does not (Arjovsky et al. 2017, Example 1 and Fig. 1).

P_0 is uniform on the segment {0} x [0, 1], P_theta the same segment shifted to x = theta. For every
theta != 0 the supports are disjoint, so JS(P_0, P_theta) = log 2 while W(P_0, P_theta) = |theta|.
Per separation we train (a) a sigmoid classifier with the GAN loss, whose held-out value gives the
JS estimate log 2 - L/2 (Goodfellow 2014, Theorem 1: min_D L = log 4 - 2 JS), and (b) a WGAN-GP
critic, whose held-out mean gap estimates W (Kantorovich-Rubinstein). The reference is the exact
EMD between the held-out clouds (POT network simplex).

The gradient penalty is soft, so the critic overshoots slightly: for this geometry the penalised
optimum is a ramp of slope k maximising k*theta - lambda*(k - 1)^2, i.e. k = 1 + theta / (2 lambda),
and the estimate is theta * (1 + theta / (2 lambda)) (printed as "soft-GP optimum"). theta = 0 (full
size only) shows the other half of Example 1: JS drops to 0 only when the supports coincide.
"""

from __future__ import annotations

import math
from pathlib import Path

import torch
from torch import Tensor

from gan_modules import losses
from gan_modules.lecture import common
from gan_modules.metrics.toy import exact_emd
from gan_modules.nets import build_critic

NAME = "js-vs-emd"
SIZES = {
    "small": {"separations": [2.0, 1.0, 0.5], "steps": 300, "hidden": [64, 64], "n_train": 2000, "n_eval": 500},
    "full": {
        "separations": [3.0, 2.0, 1.5, 1.0, 0.5, 0.25, 0.1, 0.0],
        "steps": 1000,
        "hidden": [128, 128],
        "n_train": 10_000,
        "n_eval": 1500,
    },
}
BATCH = 256
GP_WEIGHT = 10.0  # Gulrajani et al. 2017, Algorithm 1


def segment(n: int, x: float, gen: torch.Generator) -> Tensor:
    """n points uniform on the vertical unit segment at abscissa x."""
    return torch.stack([torch.full((n,), x), torch.rand(n, generator=gen)], 1)


def estimate(theta: float, p: dict, seed: int) -> dict[str, float]:
    gen = torch.Generator().manual_seed(seed)
    real, fake = segment(p["n_train"], 0.0, gen), segment(p["n_train"], theta, gen)
    real_eval, fake_eval = segment(p["n_eval"], 0.0, gen), segment(p["n_eval"], theta, gen)
    spec = {"arch": "mlp", "hidden": p["hidden"]}

    torch.manual_seed(seed)
    classifier = common.train_critic(
        build_critic(spec, (2,)),
        common.plain_objective(losses.minimax_critic_loss),
        real,
        fake,
        p["steps"],
        BATCH,
        seed,
    )
    critic = common.train_critic(
        build_critic(spec, (2,)),
        common.gradient_penalty_objective(losses.wasserstein_critic_loss, GP_WEIGHT, seed),
        real,
        fake,
        p["steps"],
        BATCH,
        seed,
    )
    with torch.no_grad():
        gan_loss = float(losses.minimax_critic_loss(classifier(real_eval), classifier(fake_eval)))
        w_est = -float(losses.wasserstein_critic_loss(critic(real_eval), critic(fake_eval)))
    return {
        "theta": theta,
        "js_estimate": math.log(2.0) - gan_loss / 2,
        "w_estimate": w_est,
        "exact_emd": exact_emd(real_eval, fake_eval),
        "soft_gp_optimum": theta * (1 + theta / (2 * GP_WEIGHT)),
    }


@common.one_thread()
def run(size: str = "full", out_dir: str | Path = common.DEFAULT_OUT, seed: int = 0) -> dict:
    p = common.pick(SIZES, size)
    rows = [estimate(theta, p, seed + i) for i, theta in enumerate(p["separations"])]
    result = {key: [r[key] for r in rows] for key in rows[0]}
    result["log2"] = math.log(2.0)

    common.print_table(
        f"{NAME}: disjoint segments at distance theta (JS in nats, log 2 = {math.log(2):.4f})",
        ["theta", "JS estimate", "critic W estimate", "exact EMD (POT)", "soft-GP optimum"],
        [[r["theta"], r["js_estimate"], r["w_estimate"], r["exact_emd"], r["soft_gp_optimum"]] for r in rows],
    )
    result["figure"] = str(plot(result, out_dir))
    print(f"  figure -> {result['figure']}")
    return result


def plot(result: dict, out_dir: str | Path) -> Path:
    fig, (ax_setup, ax) = common.new_figure(2)
    gen = torch.Generator().manual_seed(0)
    for theta in result["theta"]:
        pts = segment(40, theta, gen)
        ax_setup.scatter(pts[:, 0], pts[:, 1], s=4, color="tab:orange", alpha=0.6)
    pts = segment(40, 0.0, gen)
    ax_setup.scatter(pts[:, 0], pts[:, 1], s=6, color="tab:blue", label="P_0 (real)")
    ax_setup.scatter([], [], s=6, color="tab:orange", label="P_theta (fakes), each theta")
    ax_setup.set(title="Disjoint supports moved toward each other", xlabel="x", ylabel="y")
    ax_setup.legend(loc="lower right", fontsize=8)

    theta = result["theta"]
    ax.axhline(result["log2"], color="tab:red", ls=":", lw=1, label="log 2")
    ax.plot(theta, result["js_estimate"], "o-", color="tab:red", label="JS estimate (trained classifier)")
    ax.plot(theta, result["exact_emd"], "s--", color="black", label="exact EMD (POT)")
    ax.plot(theta, result["w_estimate"], "^-", color="tab:green", label="W estimate (WGAN-GP critic)")
    ax.plot(theta, result["soft_gp_optimum"], ":", color="tab:green", lw=1, label="soft-GP optimum")
    ax.set(title="JS is stuck at log 2; W tracks the distance", xlabel="separation theta", ylabel="nats / distance")
    ax.legend(fontsize=8)
    return common.save_figure(fig, out_dir, NAME)
