"""Where is the critic 1-Lipschitz? (Gulrajani et al. 2017, Sec. 4; Miyato et al. 2018, Sec. 2.1)

The gradient penalty only looks at interpolates between real and fake samples, so it can only hold
||grad f|| near 1 there; elsewhere in the plane the norm is whatever the network extrapolates.
Spectral normalisation divides each layer by its largest singular value, which bounds the product
of the layer norms, hence ||grad f|| <= 1 at every point of the plane (ReLU is 1-Lipschitz).

Both critics use the Wasserstein loss on ring8 (real) against a blob off to the side (fakes); only
the constraint differs. The certificate for the spectrally normalised critic is the product of the
exact spectral norms (torch.linalg.matrix_norm, ord=2) of its normalised weights. On the interpolates
the penalised critic sits a little above 1: the penalty is soft, and trading (n - 1)^2 against a
wider real/fake gap pays (see js-vs-emd for the closed form).
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import Tensor, nn

from datamodules.toy2d import sample_mixture
from gan_modules import losses, penalties
from gan_modules.constraints import apply_spectral_norm
from gan_modules.lecture import common
from gan_modules.nets import build_critic

NAME = "where-lipschitz"
SIZES = {
    "small": {"steps": 400, "hidden": [64, 64], "n": 4000, "grid": 60},
    "full": {"steps": 3000, "hidden": [256, 256, 256], "n": 20_000, "grid": 200},
}
BATCH = 256
GP_WEIGHT = 10.0  # Gulrajani et al. 2017, Algorithm 1
FAKE_CENTER, FAKE_STD = (2.5, 0.0), 0.2
XLIM, YLIM = (-3.0, 4.5), (-3.0, 3.0)
FAR = 0.75  # grid points farther than this from every interpolate are "elsewhere"


def fake_blob(n: int, gen: torch.Generator) -> Tensor:
    return torch.tensor(FAKE_CENTER) + FAKE_STD * torch.randn(n, 2, generator=gen)


def distance_to_set(points: Tensor, anchors: Tensor, chunk: int = 4096) -> Tensor:
    return torch.cat([torch.cdist(part, anchors).min(dim=1).values for part in points.split(chunk)])


@torch.no_grad()
def lipschitz_certificate(critic: nn.Module) -> float:
    """prod_l ||W_l||_2 of the weights as used in the forward pass (eval mode: frozen u, v)."""
    was_training = critic.training
    critic.eval()
    bound = 1.0
    for layer in critic.modules():
        if isinstance(layer, nn.Linear):
            bound *= float(torch.linalg.matrix_norm(layer.weight, ord=2))
    critic.train(was_training)
    return bound


@common.one_thread()
def run(size: str = "full", out_dir: str | Path = common.DEFAULT_OUT, seed: int = 0) -> dict:
    p = common.pick(SIZES, size)
    gen = torch.Generator().manual_seed(seed)
    real, fake = sample_mixture("ring8", p["n"], seed), fake_blob(p["n"], gen)
    # fresh interpolates, drawn as the penalty draws them: the region the penalty can see
    real_eval, fake_eval = sample_mixture("ring8", 2000, seed + 1), fake_blob(2000, gen)
    interpolates = penalties.interpolate(real_eval, fake_eval, torch.rand(2000, generator=gen))

    torch.manual_seed(seed)
    gp_critic = common.train_critic(
        build_critic({"arch": "mlp", "hidden": p["hidden"]}, (2,)),
        common.gradient_penalty_objective(losses.wasserstein_critic_loss, GP_WEIGHT, seed),
        real,
        fake,
        p["steps"],
        BATCH,
        seed,
    )
    torch.manual_seed(seed)
    sn_critic = common.train_critic(
        apply_spectral_norm(build_critic({"arch": "mlp", "hidden": p["hidden"]}, (2,))),
        common.plain_objective(losses.wasserstein_critic_loss),
        real,
        fake,
        p["steps"],
        BATCH,
        seed,
    )

    gx, gy, grid = common.plane_grid(XLIM, YLIM, p["grid"])
    elsewhere = distance_to_set(grid, interpolates) > FAR
    result: dict = {"elsewhere_fraction_of_plane": float(elsewhere.float().mean())}
    maps = {}
    for name, critic in (("gp", gp_critic), ("sn", sn_critic)):
        on_grid, on_interp = common.gradient_norms(critic, grid), common.gradient_norms(critic, interpolates)
        maps[name] = on_grid.view_as(gx)
        result[name] = {
            "interp_mean": float(on_interp.mean()),
            "interp_abs_dev": float((on_interp - 1).abs().mean()),
            "interp_off_by_25pct": float(((on_interp - 1).abs() > 0.25).float().mean()),
            "elsewhere_mean": float(on_grid[elsewhere].mean()),
            "elsewhere_abs_dev": float((on_grid[elsewhere] - 1).abs().mean()),
            "elsewhere_off_by_25pct": float(((on_grid[elsewhere] - 1).abs() > 0.25).float().mean()),
            "plane_min": float(on_grid.min()),
            "plane_max": float(on_grid.max()),
        }
    result["sn"]["certificate"] = lipschitz_certificate(sn_critic)

    rows = []
    for name, label in (("gp", "gradient penalty"), ("sn", "spectral norm")):
        r = result[name]
        rows.append(
            [label, r["interp_mean"], r["interp_abs_dev"], r["interp_off_by_25pct"], r["elsewhere_mean"],
             r["elsewhere_abs_dev"], r["elsewhere_off_by_25pct"], r["plane_min"], r["plane_max"]]
        )  # fmt: skip
    common.print_table(
        f"{NAME}: n = ||grad f|| on interpolates vs elsewhere (> {FAR} from every interpolate, "
        f"{100 * result['elsewhere_fraction_of_plane']:.0f}% of the plane)",
        [
            "critic",
            "interp: mean",
            "|n-1|",
            "P(|n-1|>.25)",
            "elsewhere: mean",
            "|n-1|",
            "P(|n-1|>.25)",
            "plane min",
            "plane max",
        ],
        rows,
    )
    print(f"  spectral-norm certificate prod ||W_l||_2 = {result['sn']['certificate']:.4f}")
    result["figure"] = str(plot(gx, gy, maps, real, fake, interpolates, out_dir))
    print(f"  figure -> {result['figure']}")
    return result


def plot(
    gx: Tensor, gy: Tensor, maps: dict[str, Tensor], real: Tensor, fake: Tensor, interp: Tensor, out_dir: str | Path
) -> Path:
    fig, axes = common.new_figure(2, width=5.2)
    titles = {"gp": "WGAN-GP critic: ||grad f||", "sn": "Spectrally normalised critic: ||grad f||"}
    for ax, (name, norms) in zip(axes, maps.items(), strict=True):
        mesh = ax.pcolormesh(gx, gy, norms, cmap="coolwarm", vmin=0, vmax=2, shading="auto")
        ax.contour(gx, gy, norms, levels=[0.9, 1.1], colors="black", linewidths=0.6)
        ax.scatter(interp[:300, 0], interp[:300, 1], s=1, color="grey", alpha=0.5, label="interpolates")
        ax.scatter(real[:300, 0], real[:300, 1], s=3, color="black", label="real")
        ax.scatter(fake[:300, 0], fake[:300, 1], s=3, color="tab:orange", label="fakes")
        ax.set(title=titles[name], xlabel="x (contours: 0.9, 1.1)", ylabel="y", aspect="equal")
        fig.colorbar(mesh, ax=ax, shrink=0.8)
    axes[0].legend(loc="lower left", fontsize=7)
    return common.save_figure(fig, out_dir, NAME)
