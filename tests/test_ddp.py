"""DDP through the real `gan-lab fit` command: 2 gloo ranks with global batch B == 1 process with batch B.

The reference is the same command on one process. Lightning's `ddp` strategy re-executes the
command line for rank 1, so the 2-rank run is a subprocess (`python -m gan_modules.cli`, what
`gan-lab` runs). `tests/scripts/ddp_probe.py::RankDump` saves each rank's weights and buffers at
the start and the end, and the critic gradients of the first critic step after DDP's all-reduce.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from conftest import WGAN_GP, fit_yaml

from gan_modules.cli import main

SCRIPTS = Path(__file__).parent / "scripts"
REPO = Path(__file__).parent.parent
TOL = 1e-5

OBJECTIVES = {
    "wgan_gp": WGAN_GP,  # weight 10: the first critic gradient includes the penalty's double-backward part
    # Minibatch discrimination, each sample compared with the global batch (the other rank's kernels
    # gathered with autograd), and top-k generator updates: all 12 fakes of the global batch in
    # iterations 0-1, then the 3 the critic rates highest over both ranks' scores (an odd k: the ranks
    # cannot hold equal shares). Non-saturating, not hinge: the hinge's +-1/B score gradients make some
    # bias gradients cancel to exactly 0 on one process and to 1e-8 over two ranks, which Adam's first
    # step, g / (|g| + eps), turns into a step of most of the learning rate.
    "sn_minibatch_top_k": {
        "loss": "non_saturating",
        "regularizers": None,
        "constraint": "spectral_norm",
        "critic": {"arch": "mlp", "hidden": [16, 16], "minibatch_kernels": 4},
        "top_k": {"gamma": 0.25, "nu": 0.25, "every": 2},
    },
    # lazy R1 (a Dreg phase on every 2nd critic step: 4 of the 8 critic steps), Adam at lr * 2/3, betas ** 2/3
    "lazy_r1": {"loss": "non_saturating", "regularizers": [{"name": "r1", "weight": 1.0, "every": 2}]},
    "ns_gan": {"loss": "non_saturating", "regularizers": None},
    # class-conditional WGAN-GP on ring8's 8 mixture components: labels travel with the stream's rows,
    # the generator step's labels come from the global draws, the penalty holds each row's label fixed
    "conditional": {**WGAN_GP, "num_classes": 8},
    # self-conditioned WGAN-GP: each rank labels its half batch with the clusters, reclustered at
    # iterations 2 and 4 from the same images in the all-reduced critic's features; the generator's
    # labels are global draws from the clusters' sizes (a hinge loss would do as well, but on 8
    # points one sample at its kink turns a last-bit difference into a different gradient)
    "self_conditioned": {**WGAN_GP, "self_conditioning": {"clusters": 4, "images": 64, "every": 2}},
    # PacGAN's packs of 2 (whole packs on each rank) under WGAN-GP: one interpolation weight per pack,
    # drawn for the global batch's packs and sliced per rank, the norm over each pack
    "packed": {**WGAN_GP, "critic": {"arch": "mlp", "hidden": [16, 16], "pack": 2}},
    # DiffAugment on every critic input, the penalty's interpolates included; its draws are global-batch draws
    "diffaugment": {**WGAN_GP, "augment": "color,translation,cutout"},
}
# Objectives that need other data than ring8 (the augmentation acts on images)
DATA = {
    "diffaugment": {
        "class_path": "datamodules.DigitsDataModule",
        "init_args": {"dataset": None, "size": None, "batch_size": 8},
    }
}


def ddp_config(tmp_path: Path, objective: str, g_batch_size: int | None = None, batch_norm: bool = False) -> Path:
    """4 generator iterations of 2 critic steps on ring8 (or `DATA`'s), global batch 8, with the rank probe."""
    nets = {"generator": {"arch": "mlp", "hidden": [16, 16], "batch_norm": batch_norm}}
    model = {"init_args": {**OBJECTIVES[objective], "n_critic": 2, "g_batch_size": g_batch_size, "z_dim": 4, **nets}}
    model["init_args"].update(lr_g=1.0e-3, lr_d=1.0e-3)
    return fit_yaml(
        tmp_path / "ddp.yaml",
        trainer={"max_steps": 4, "callbacks": [{"class_path": "ddp_probe.RankDump"}]},
        checkpoint={"every_n_train_steps": 4},
        image_grid={"every_n_steps": 1000},
        model=model,
        data=DATA.get(objective, {"init_args": {"batch_size": 8}}),
    )


def _max_diff(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> float:
    assert a.keys() == b.keys()
    return max((a[k].double() - b[k].double()).abs().max().item() for k in a)


def _dump(root: Path, rank: int) -> dict:
    return torch.load(root / "rank_dump" / f"rank{rank}.pt", weights_only=False)


def _fit_two_ranks(config: Path, root: Path, *how: str) -> None:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(SCRIPTS), str(REPO)]), "OMP_NUM_THREADS": "1"}
    command = [sys.executable, "-m", "gan_modules.cli", "fit", "--config", str(config), *how]
    command += ["--trainer.default_root_dir", str(root)]
    done = subprocess.run(command, env=env, cwd=root.parent, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]


@pytest.mark.slow
@pytest.mark.ddp
@pytest.mark.parametrize(
    "objective",
    ["wgan_gp", "sn_minibatch_top_k", "lazy_r1", "conditional", "self_conditioned", "packed", "diffaugment"],
)
def test_two_gloo_ranks_match_one_process(tmp_path, monkeypatch, objective):
    # the generator steps take 12 fakes (6 per rank), not the real batch's 8, except lazy R1's and DiffAugment's
    config = ddp_config(
        tmp_path,
        objective,
        g_batch_size=None if objective in ("lazy_r1", "diffaugment") else 12,
    )
    monkeypatch.syspath_prepend(str(SCRIPTS))

    one = tmp_path / "one"
    assert main(["fit", "--config", str(config), "--trainer.default_root_dir", str(one)]) == 0
    two = tmp_path / "two"
    _fit_two_ranks(config, two, "--trainer", str(REPO / "configs" / "trainer" / "ddp_cpu.yaml"))  # strategy: ddp

    ref, rank0, rank1 = _dump(one, 0), _dump(two, 0), _dump(two, 1)
    assert (ref["world_size"], rank0["world_size"], rank1["rank"]) == (1, 2, 1)
    assert _max_diff(ref["start"], rank0["start"]) == 0.0  # same initial weights and buffers
    # Every parameter and buffer (spectral-norm u/v vectors included) agrees across ranks ...
    assert _max_diff(rank0["end"], rank1["end"]) == 0.0
    # ... and with one process, although training moved the weights far more than the tolerance.
    assert _max_diff(ref["start"], ref["end"]) > 100 * TOL
    assert _max_diff(ref["end"], rank0["end"]) < TOL
    # The first three critic gradients, all-reduced over the ranks' half batches, equal the full-batch
    # ones (for WGAN-GP they include the penalty's double-backward part, weight 10; for lazy R1 the
    # third is the first Dreg phase, R1's double backward alone, times its interval 2).
    assert len(ref["critic_grads"]) == len(rank0["critic_grads"]) == len(rank1["critic_grads"]) == 3
    for step, grads in enumerate(ref["critic_grads"]):
        for name, grad in grads.items():
            for rank in (rank0, rank1):
                torch.testing.assert_close(rank["critic_grads"][step][name], grad, rtol=TOL, atol=1e-6, msg=f"{step}")
    # The checkpoint is written once, by rank 0, and holds rank 0's final state.
    saved = torch.load(two / "checkpoints" / "last.ckpt", weights_only=False)["state_dict"]
    assert _max_diff(saved, rank0["end"]) == 0.0


@pytest.mark.slow
@pytest.mark.ddp
def test_batch_norm_statistics_agree_across_ranks(tmp_path):
    """Without SyncBatchNorm (GPU only) each rank normalises with its half batch's statistics, so the
    run differs from one process; the running statistics must still be the same on every rank
    (rank 0's, broadcast after each generator iteration), or ranks would sample differently."""
    config = ddp_config(tmp_path, "ns_gan", batch_norm=True)
    two = tmp_path / "two"
    _fit_two_ranks(config, two, "--trainer.devices", "2")  # strategy auto: Lightning picks plain DDP
    rank0, rank1 = _dump(two, 0), _dump(two, 1)
    stats = [k for k in rank0["end"] if k.endswith(("running_mean", "running_var"))]
    assert stats and all(not torch.equal(rank0["start"][k], rank0["end"][k]) for k in stats)  # they were updated
    assert _max_diff(rank0["end"], rank1["end"]) == 0.0
