"""Mode collapse on the 2D mixtures, measured with the PacGAN / VEEGAN protocol (Lin et al. 2018,
Table 1; Srivastava et al. 2017, Table 1): modes covered, % high-quality samples (within 3 std of a
mode) and the reverse KL between the mode histogram of the samples and the uniform one.

Unlike the critic-only experiments this trains the real thing: each objective's preset
(`configs/model/<name>.yaml`, built by `gan_modules.compose.preset`), fitted by a Lightning Trainer
on `Toy2DDataModule`, and evaluated on samples from `module.sample`. Set here: the same small MLPs
for every objective (so that the loss is what differs), Adam with lr 1e-3 for both nets (the image
settings of 1e-4 to 2e-4 need tens of thousands of iterations on these mixtures, more than a CPU
budget allows), and the published *toy* or robust settings where a preset's image settings fail on
2D data (`TOY_SETTINGS`). At the full size (1,200 generator iterations) the generators are still
coarse, so the high-quality % is low for most objectives: read the modes and reverse-KL columns for
collapse. Whether a given loss collapses on a given seed is an outcome, not a premise.
"""

from __future__ import annotations

from pathlib import Path

import lightning as L
import torch

from datamodules.toy2d import Toy2DDataModule
from gan_modules.compose import preset
from gan_modules.engine import AdversarialModule
from gan_modules.lecture import common
from gan_modules.metrics.toy import mode_metrics

NAME = "mode-collapse"
SIZES = {
    "small": {"variants": ["gan", "wgan_gp"], "datasets": ["ring8", "grid25"], "max_steps": 20, "hidden": [32, 32],
              "num_samples": 500, "n": 5000},
    "full": {"variants": ["gan", "ns_gan", "lsgan", "wgan_gp", "sngan"], "datasets": ["ring8", "grid25"],
             "max_steps": 1200, "hidden": [128, 128, 128], "num_samples": 2500, "n": 50_000},
}  # fmt: skip
BATCH = 256
Z_DIM = 16
LR = 1e-3
TOY_SETTINGS: dict[str, dict] = {
    # WGAN-GP authors' toy script (gan_toy.py): lambda 0.1 ("smaller lambda seems to help for toy
    # tasks"), with the preset's Adam betas (0.5, 0.9) and 5 critic iterations, batch 256; with
    # lambda 10 and beta1 0 the fakes drift off the data at this learning rate.
    "wgan_gp": {"regularizers": [{"name": "gradient_penalty", "weight": 0.1}]},
    # Miyato et al. 2018, Table 1, setting D (lr 1e-3, betas (0.5, 0.9), n_dis 5), one of the
    # settings SN is robust to; with n_dis 1 the SN critic lags and the fakes run off in a line.
    "sngan": {"betas": (0.5, 0.9), "n_critic": 5},
}
LABELS = {"gan": "GAN (minimax)", "ns_gan": "GAN (NS)", "lsgan": "LSGAN", "wgan_gp": "WGAN-GP", "sngan": "SNGAN"}


def train(name: str, dataset: str, p: dict, seed: int) -> tuple[AdversarialModule, Toy2DDataModule]:
    """One preset fitted for `max_steps` generator iterations by a real Lightning Trainer."""
    L.seed_everything(seed, verbose=False)
    net = {"arch": "mlp", "hidden": p["hidden"]}
    module = preset(
        name,
        data_shape=(2,),
        z_dim=Z_DIM,
        generator=net,
        critic=net,
        lr_g=LR,
        lr_d=LR,
        seed=seed,
        **TOY_SETTINGS.get(name, {}),
    )
    datamodule = Toy2DDataModule(dataset, size=p["n"], batch_size=BATCH, seed=seed)
    common.fit(module, datamodule, max_steps=p["max_steps"])
    return module, datamodule


@common.one_thread()
def run(size: str = "full", out_dir: str | Path = common.DEFAULT_OUT, seed: int = 0) -> dict:
    """Returns {"table": {dataset: {preset or "real": metrics}}, "modules": {"dataset/preset": module},
    "num_samples", "sample_seed"}: the metrics are those of `module.sample(num_samples, sample_seed)`."""
    p = common.pick(SIZES, size)
    sample_seed = seed + 12345
    table: dict[str, dict[str, dict[str, float]]] = {}
    modules: dict[str, AdversarialModule] = {}
    samples: dict[str, dict[str, torch.Tensor]] = {}
    for dataset in p["datasets"]:
        table[dataset], samples[dataset] = {}, {}
        for name in p["variants"]:  # preset names (configs/model)
            module, datamodule = train(name, dataset, p, seed)
            modules[f"{dataset}/{name}"] = module
            fake = module.sample(p["num_samples"], seed=sample_seed)
            table[dataset][name] = mode_metrics(fake, datamodule.modes, datamodule.mode_std)
            samples[dataset][name] = fake
        real = datamodule.real_samples(p["num_samples"], seed=sample_seed)
        table[dataset]["real"] = mode_metrics(real, datamodule.modes, datamodule.mode_std)
        samples[dataset]["real"] = real

    for dataset, rows in table.items():
        common.print_table(
            f"{NAME}: {dataset} ({len(Toy2DDataModule(dataset).modes)} modes), {p['max_steps']} generator iterations, "
            f"{p['num_samples']} samples",
            ["model", "modes", "high-quality %", "reverse KL"],
            [[LABELS.get(name, name), int(m["modes"]), m["hq_pct"], m["reverse_kl"]] for name, m in rows.items()],
        )
    result = {"table": table, "modules": modules, "num_samples": p["num_samples"], "sample_seed": sample_seed}
    result["figure"] = str(plot(samples, table, out_dir))
    print(f"  figure -> {result['figure']}")
    return result


def plot(samples: dict[str, dict[str, torch.Tensor]], table: dict, out_dir: str | Path) -> Path:
    datasets = list(samples)
    names = list(samples[datasets[0]])
    fig, axes = common.new_figure(len(names), nrows=len(datasets), width=3.0, height=3.0)
    for i, dataset in enumerate(datasets):
        modes = Toy2DDataModule(dataset).modes
        lim = float(modes.abs().max()) * 1.6
        for j, name in enumerate(names):
            ax = axes[i * len(names) + j]
            pts, m = samples[dataset][name], table[dataset][name]
            ax.scatter(modes[:, 0], modes[:, 1], s=30, marker="x", color="tab:red", lw=1)
            ax.scatter(pts[:, 0], pts[:, 1], s=1, alpha=0.4, color="tab:blue")
            ax.set(xlim=(-lim, lim), ylim=(-lim, lim), aspect="equal", xticks=[], yticks=[])
            ax.set_title(
                f"{LABELS.get(name, name)} / {dataset}\nmodes {int(m['modes'])}, HQ {m['hq_pct']:.0f}%, "
                f"rKL {m['reverse_kl']:.2f}",
                fontsize=8,
            )
    return common.save_figure(fig, out_dir, NAME)
