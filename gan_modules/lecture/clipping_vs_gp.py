"""Weight clipping drives critic weights to the ends of the clipping box; a gradient penalty does
not (Gulrajani et al. 2017, Sec. 3 and Fig. 1b, right).

Two identical critics, trained with the Wasserstein loss on the Swiss roll (real) against Gaussian
noise (the fakes of an untrained generator): one under WGAN weight clipping to [-c, c] after every
step (Arjovsky et al. 2017, Algorithm 1), one with the WGAN-GP penalty and no clipping. Under
clipping the best the critic can do to widen the gap is to scale every weight up, so weights pile
up at +-c and the critic degenerates towards a sign pattern; the penalty instead constrains the
function, leaving the weights spread out. c = 0.1 (one of Fig. 1b's values) lies outside the
default initialisation range of the hidden layers, so the pile-up is made by training, not by the
initial clip; both critics use the same optimiser so that only the constraint differs.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import Tensor, nn

from datamodules.toy2d import sample_mixture
from gan_modules import losses
from gan_modules.constraints import clip_weights
from gan_modules.lecture import common
from gan_modules.nets import build_critic

NAME = "clipping-vs-gp"
SIZES = {
    "small": {"steps": 300, "hidden": [128, 128], "lr": 1e-3, "n": 4000},
    "full": {"steps": 3000, "hidden": [256, 256, 256], "lr": 1e-4, "n": 20_000},
}
BATCH = 256
CLIP = 0.1  # Gulrajani et al. 2017, Fig. 1b uses c in {0.1, 0.01, 0.001}
GP_WEIGHT = 10.0  # Gulrajani et al. 2017, Algorithm 1
BETAS = (0.0, 0.9)  # Gulrajani et al. 2017, Algorithm 1 (used for both critics)
BAND = 0.01  # | |w| - c | <= 1% of c counts as "at +-c"


def weight_matrices(critic: nn.Module) -> Tensor:
    """All entries of the critic's weight matrices (biases excluded, as in Fig. 1b's histogram)."""
    return torch.cat([p.detach().flatten() for p in critic.parameters() if p.dim() > 1])


def at_bound_fraction(weights: Tensor) -> float:
    return float(((weights.abs() - CLIP).abs() <= BAND * CLIP).float().mean())


@common.one_thread()
def run(size: str = "full", out_dir: str | Path = common.DEFAULT_OUT, seed: int = 0) -> dict:
    p = common.pick(SIZES, size)
    gen = torch.Generator().manual_seed(seed)
    real, fake = sample_mixture("swissroll", p["n"], seed), torch.randn(p["n"], 2, generator=gen)
    spec = {"arch": "mlp", "hidden": p["hidden"]}

    torch.manual_seed(seed)
    clipped = build_critic(spec, (2,))
    clip_weights(clipped, CLIP)  # Algorithm 1 keeps w in [-c, c] from the start
    init_fraction = at_bound_fraction(weight_matrices(clipped))
    common.train_critic(
        clipped,
        common.plain_objective(losses.wasserstein_critic_loss),
        real,
        fake,
        p["steps"],
        BATCH,
        seed,
        lr=p["lr"],
        betas=BETAS,
        after_step=lambda: clip_weights(clipped, CLIP),
    )
    torch.manual_seed(seed)
    penalised = common.train_critic(
        build_critic(spec, (2,)),
        common.gradient_penalty_objective(losses.wasserstein_critic_loss, GP_WEIGHT, seed),
        real,
        fake,
        p["steps"],
        BATCH,
        seed,
        lr=p["lr"],
        betas=BETAS,
    )

    w_clip, w_gp = weight_matrices(clipped), weight_matrices(penalised)
    result = {
        "clip": CLIP,
        "clip_at_bound_init": init_fraction,
        "clip_at_bound": at_bound_fraction(w_clip),
        "gp_at_bound": at_bound_fraction(w_gp),
        "gp_abs_max": float(w_gp.abs().max()),
        "clip_weights": w_clip.tolist(),
        "gp_weights": w_gp.tolist(),
    }
    common.print_table(
        f"{NAME}: fraction of critic weights within {BAND:.0%} of +-c (c = {CLIP}) after {p['steps']} steps",
        ["critic", "at +-c", "at +-c at init", "max |w|"],
        [
            ["weight clipping", result["clip_at_bound"], init_fraction, float(w_clip.abs().max())],
            ["gradient penalty", result["gp_at_bound"], "-", result["gp_abs_max"]],
        ],
    )
    result["figure"] = str(plot(w_clip, w_gp, out_dir))
    print(f"  figure -> {result['figure']}")
    return result


def plot(w_clip: Tensor, w_gp: Tensor, out_dir: str | Path) -> Path:
    fig, axes = common.new_figure(2)
    for ax, w, title in ((axes[0], w_clip, "Weight clipping"), (axes[1], w_gp, "Gradient penalty")):
        lim = max(CLIP * 1.2, float(w.abs().max()))
        ax.hist(w.numpy(), bins=100, range=(-lim, lim), color="tab:blue")
        for edge in (-CLIP, CLIP):
            ax.axvline(edge, color="tab:red", ls=":", lw=1)
        ax.set(title=f"{title}: critic weights", xlabel="weight value (red: +-c)", ylabel="count", yscale="log")
    return common.save_figure(fig, out_dir, NAME)
