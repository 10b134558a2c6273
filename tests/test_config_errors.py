"""Bad configurations fail before training with exactly one line naming the key, the value and what
is allowed (through `gan-lab fit`, i.e. `gan_modules.cli.main`)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from gan_modules.cli import main
from gan_modules.variants import VARIANTS

BASE = """
seed_everything: 0
trainer:
  max_steps: 2
  accelerator: cpu
  devices: 1
  logger: false
  enable_progress_bar: false
model:
  class_path: {model}
  init_args:
    z_dim: 2
    generator: {{arch: {arch}, {width}}}
    critic: {{arch: {arch}, {width}}}
data:
  class_path: {data}
  init_args: {{batch_size: 8{data_args}}}
"""
TOY = {"arch": "mlp", "width": "hidden: [8]", "data": "datamodules.Toy2DDataModule", "data_args": ""}
DIGITS = {"arch": "dcgan", "width": "width: 4", "data": "datamodules.DigitsDataModule", "data_args": ""}

CASES = {
    "n_critic": ("gan_modules.WGANGP", TOY, ["--model.init_args.n_critic", "0"], "model.n_critic=0", "integer >= 1"),
    "gp_weight": ("gan_modules.WGANGP", TOY, ["--model.init_args.gp_weight", "-1"], "model.gp_weight=-1", ">= 0"),
    "clip": ("gan_modules.WGAN", TOY, ["--model.init_args.clip", "0"], "model.clip=0", "> 0"),
    "variant": ("gan_modules.WGANGP", TOY, ["--model", "wgan_gpp"], "model='wgan_gpp' is unknown", "wgan_gp"),
    "variant_class_path": ("gan_modules.NoSuchGAN", TOY, [], "model='gan_modules.NoSuchGAN' is unknown", "wgan_gp"),
    "loss": ("gan_modules.SNGAN", TOY, ["--model.init_args.loss", "hinj"], "model.loss='hinj'", "hinge"),
    "divergence": ("gan_modules.FGAN", TOY, ["--model.init_args.divergence", "kl2"], "model.divergence='kl2'", "kl"),
    "image_size": (
        "gan_modules.NSGAN",
        DIGITS,
        ["--data.init_args.image_size", "10"],
        "10x10",
        "data.image_size",
    ),
    "batch_below_ranks": (
        "gan_modules.NSGAN",
        TOY,
        ["--data.init_args.batch_size", "1", "--trainer.strategy", "ddp", "--trainer.devices", "2"],
        "data.batch_size=1",
        "a multiple of 2",
    ),
    "batch_not_divisible": (
        "gan_modules.NSGAN",
        TOY,
        ["--data.init_args.batch_size", "9", "--trainer.strategy", "ddp", "--trainer.devices", "2"],
        "data.batch_size=9",
        "a multiple of 2",
    ),
    "ddp_spawn_spectral_norm": (
        "gan_modules.SNGAN",
        TOY,
        ["--trainer.strategy", "ddp_spawn", "--trainer.devices", "2"],
        "trainer.strategy='ddp_spawn'",
        "allowed: ddp, ddp_fork",
    ),
    "ddp_static_graph": (
        "gan_modules.NSGAN",
        TOY,
        ["--trainer.strategy", "lightning.pytorch.strategies.DDPStrategy", "--trainer.strategy.static_graph", "true"],
        "trainer.strategy.static_graph=True",
        "allowed: false",
    ),
    "iterations_per_batch_interval": (
        "gan_modules.WGANGP",
        TOY,
        ["--model.init_args.iterations_per_batch", "4", "--checkpoint.every_n_train_steps", "10"],
        "checkpoint.every_n_train_steps=10 is invalid with model.iterations_per_batch=4",
        "a multiple of 4",
    ),
    "iterations_per_batch_warmup": (
        "gan_modules.WGAN",
        TOY,
        ["--model.init_args.iterations_per_batch", "2", "--model.init_args.wgan_warmup", "true"],
        "model.iterations_per_batch=2",
        "1 with model.wgan_warmup=true",
    ),
    "dataset_path": (
        "gan_modules.NSGAN",
        {**DIGITS, "data": "datamodules.TorchvisionDataModule", "data_args": ", dataset: mnist, download: false"},
        ["--data.init_args.root", "{tmp}/no_such_folder", "--data.init_args.image_size", "16"],
        "data.root='{tmp}/no_such_folder'",
        "MNIST/raw/train-images-idx3-ubyte.gz",
    ),
}


@pytest.mark.parametrize("case", list(CASES))
def test_bad_value_fails_in_one_line_before_training(case, tmp_path, capsys):
    model, spec, extra, names, allowed = CASES[case]
    config = tmp_path / "run.yaml"
    config.write_text(BASE.format(model=model, **spec))
    root = tmp_path / "run"
    args = ["fit", "--config", str(config), "--trainer.default_root_dir", str(root)]
    args += [a.replace("{tmp}", str(tmp_path)) for a in extra]

    assert main(args) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, err
    line = err[0]
    assert line.startswith("gan-lab: error: ")
    assert names.replace("{tmp}", str(tmp_path)) in line and allowed in line, line
    assert not (root / "checkpoints").exists()  # nothing was trained


def test_unknown_variant_lists_every_registered_name(tmp_path, capsys):
    assert main(["fit", "--model", "dcgan2"]) == 2
    line = capsys.readouterr().err.strip()
    assert all(name in line for name in VARIANTS)


def test_variant_shorthand_selects_the_class(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["fit", "--model", "wgan_gp", "--print_config"])
    assert exit_info.value.code == 0
    assert f"class_path: {VARIANTS['wgan_gp'].__module__}.WGANGP" in capsys.readouterr().out


def test_a_rejected_command_prints_nothing_else_on_stderr(tmp_path):
    """From a shell: Lightning's start-up chatter goes to stdout, stderr holds just the error."""
    config = tmp_path / "run.yaml"
    config.write_text(BASE.format(model="gan_modules.NSGAN", **TOY))
    args = ["fit", "--config", str(config), "--trainer.strategy", "ddp", "--trainer.devices", "2"]
    args += ["--data.init_args.batch_size", "9", "--trainer.default_root_dir", str(tmp_path / "run")]
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).parent.parent)}
    done = subprocess.run([sys.executable, "-m", "gan_modules.cli", *args], capture_output=True, text=True, env=env)
    assert done.returncode == 2
    assert done.stderr.strip().splitlines() == [
        "gan-lab: error: data.batch_size=9 is invalid for 2 processes (trainer.devices x trainer.num_nodes); "
        "allowed: a multiple of 2 (it is the global batch, split evenly over the ranks)"
    ]
