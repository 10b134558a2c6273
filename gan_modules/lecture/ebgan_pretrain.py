"""An autoencoder critic is an energy function before any adversarial step (Zhao et al. 2017,
Sec. 2.3): trained only to reconstruct real data, it gives real data low energy (reconstruction
error) and everything off the data manifold high energy.

This runs the real thing: the `ebgan` preset (`gan_modules.compose.preset`) with
`critic_pretrain_steps`, fitted by a Lightning Trainer on `Toy2DDataModule("ring8")` for exactly
that many batches, so every step is a pretraining step and the generator is never used. The noise
is Gaussian with the data's second moment (E||x||^2), so that an untrained autoencoder, whose
output is near a constant, gives noise and data about the same energy; the gap afterwards is then
learnt, not a matter of scale. The code is 1-dimensional: with a code as wide as the data the
autoencoder could learn the identity and give every point low energy.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import Tensor

from datamodules.toy2d import Toy2DDataModule, sample_mixture
from gan_modules.compose import preset
from gan_modules.engine import AdversarialModule
from gan_modules.lecture import common

NAME = "ebgan-pretrain"
SIZES = {
    "small": {"pretrain_steps": 200, "hidden": [64, 64], "n": 10_000},
    "full": {"pretrain_steps": 2000, "hidden": [128, 128], "n": 50_000},
}
BATCH = 256
CODE_DIM = 1
LR = 1e-3  # speed of this critic-only demo; the adversarial settings are the ebgan preset's
N_EVAL = 2000


def matched_noise(real: Tensor, n: int, seed: int) -> Tensor:
    """N(0, s^2 I) with 2 s^2 = E||x||^2 of the real data."""
    scale = float(real.pow(2).sum(1).mean().div(real.shape[1]).sqrt())
    return scale * torch.randn(n, real.shape[1], generator=torch.Generator().manual_seed(seed))


@torch.no_grad()
def energies(module: AdversarialModule, x: Tensor) -> Tensor:
    was_training = module.critic.training
    module.critic.eval()
    out = module.critic(x)
    module.critic.train(was_training)
    return out


@common.one_thread()
def run(size: str = "full", out_dir: str | Path = common.DEFAULT_OUT, seed: int = 0) -> dict:
    p = common.pick(SIZES, size)
    torch.manual_seed(seed)
    module = preset(
        "ebgan",
        data_shape=(2,),
        critic={"arch": "autoencoder", "hidden": p["hidden"], "code_dim": CODE_DIM},
        generator={"arch": "mlp", "hidden": p["hidden"]},
        critic_pretrain_steps=p["pretrain_steps"],
        lr_d=LR,
        seed=seed,
    )
    datamodule = Toy2DDataModule("ring8", size=p["n"], batch_size=BATCH, seed=seed)
    real_eval = sample_mixture("ring8", N_EVAL, seed + 1)  # held out: not in the training sample
    noise = matched_noise(real_eval, N_EVAL, seed + 2)
    before = {"real": energies(module, real_eval), "noise": energies(module, noise)}

    # one epoch of exactly `pretrain_steps` batches: every batch is a pretraining step
    trainer = common.fit(module, datamodule, max_epochs=1, limit_train_batches=p["pretrain_steps"])
    after = {"real": energies(module, real_eval), "noise": energies(module, noise)}

    result = {
        "pretrain_steps_done": int(module.real_batches_consumed),  # every batch consumed was a pretraining one
        "generator_steps": int(trainer.global_step),
        "before": {k: float(v.mean()) for k, v in before.items()},
        "after": {k: float(v.mean()) for k, v in after.items()},
    }
    result["ratio_before"] = result["before"]["noise"] / result["before"]["real"]
    result["ratio_after"] = result["after"]["noise"] / result["after"]["real"]
    result["auc_after"] = auc(after["real"], after["noise"])
    common.print_table(
        f"{NAME}: mean energy (reconstruction MSE) of held-out ring8 data vs matched Gaussian noise",
        ["autoencoder", "E[energy] real", "E[energy] noise", "noise / real"],
        [
            ["untrained", result["before"]["real"], result["before"]["noise"], result["ratio_before"]],
            [f"after {result['pretrain_steps_done']} pretraining steps", result["after"]["real"],
             result["after"]["noise"], result["ratio_after"]],
        ],
    )  # fmt: skip
    print(
        f"  generator iterations taken: {result['generator_steps']}; "
        f"P(energy(noise) > energy(real)) = {result['auc_after']:.4f}"
    )
    result["figure"] = str(plot(module, before, after, real_eval, noise, out_dir))
    print(f"  figure -> {result['figure']}")
    return result


def auc(low: Tensor, high: Tensor) -> float:
    """P(a random `high` value exceeds a random `low` value): how well energy separates the two."""
    return float((high.unsqueeze(1) > low.unsqueeze(0)).float().mean())


def plot(
    module: AdversarialModule,
    before: dict[str, Tensor],
    after: dict[str, Tensor],
    real: Tensor,
    noise: Tensor,
    out_dir: str | Path,
) -> Path:
    fig, (ax_hist, ax_map) = common.new_figure(2, width=5.0)
    all_e = torch.cat([*before.values(), *after.values()]).clamp_min(1e-8)
    bins = torch.logspace(float(all_e.log10().min()), float(all_e.log10().max()), 60).numpy()
    styles = {"real": "tab:blue", "noise": "tab:orange"}
    for name, colour in styles.items():
        ax_hist.hist(before[name].clamp_min(1e-8).numpy(), bins=bins, histtype="step", ls=":", color=colour,
                     label=f"{name}, untrained")  # fmt: skip
        ax_hist.hist(after[name].clamp_min(1e-8).numpy(), bins=bins, histtype="stepfilled", alpha=0.5, color=colour,
                     label=f"{name}, pretrained")  # fmt: skip
    ax_hist.set(xscale="log", title="Energy = reconstruction error", xlabel="energy", ylabel="count")
    ax_hist.legend(fontsize=8)

    gx, gy, grid = common.plane_grid((-2.5, 2.5), (-2.5, 2.5), 150)
    energy_map = energies(module, grid).view_as(gx).clamp_min(1e-6).log10()
    mesh = ax_map.pcolormesh(gx, gy, energy_map, cmap="viridis", shading="auto")
    fig.colorbar(mesh, ax=ax_map, label="log10 energy")
    ax_map.scatter(noise[:300, 0], noise[:300, 1], s=2, color="tab:orange", label="noise")
    ax_map.scatter(real[:300, 0], real[:300, 1], s=2, color="tab:red", label="real (ring8)")
    ax_map.set(title="Pretrained energy over the plane", xlabel="x", ylabel="y", aspect="equal")
    ax_map.legend(loc="lower left", fontsize=7)
    return common.save_figure(fig, out_dir, NAME)
