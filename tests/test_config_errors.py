"""Bad configurations fail before training with exactly one line naming the key, the value and what
is allowed (through `gan-lab fit`, i.e. `gan_modules.cli.main`)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from conftest import fit_yaml

from gan_modules.cli import main
from gan_modules.compose import presets

TOY = {"init_args": {"generator": {"arch": "mlp", "hidden": [8]}, "critic": {"arch": "mlp", "hidden": [8]}}}
DIGITS = {"class_path": "datamodules.DigitsDataModule", "init_args": {"dataset": None, "size": None}}
DCGAN = {"arch": "dcgan", "width": 4, "hidden": None}  # hidden: None drops the toy MLP's option
DIGITS_NETS = {"init_args": {"generator": DCGAN, "critic": DCGAN}}
NS_GAN = {"loss": "non_saturating", "regularizers": None}
SNGAN = {"loss": "hinge", "regularizers": None, "constraint": "spectral_norm"}
WGAN = {"loss": "wasserstein", "regularizers": None, "constraint": {"name": "clip", "c": 0.01}}


def bad_config(path: Path, objective: dict, digits: dict | None = None) -> Path:
    """A 2-iteration fit with `objective` (model init args) on ring8, or on `digits` (a data section)."""
    nets = DIGITS_NETS if digits else TOY
    model = {"init_args": {**nets["init_args"], **objective}}  # None values stay: they remove the base's keys
    data = {**(digits or {}), "init_args": {**(digits or {}).get("init_args", {}), "batch_size": 8}}
    # no checkpoint or image_grid intervals: the CLI's defaults
    return fit_yaml(path, trainer={"max_steps": 2}, checkpoint=None, image_grid=None, model=model, data=data)


TORCHVISION = {
    "class_path": "datamodules.TorchvisionDataModule",
    "init_args": {"dataset": "mnist", "download": False, "size": None},
}
CASES = {
    "n_critic": ({}, None, ["--model.init_args.n_critic", "0"], "model.n_critic=0", "integer >= 1"),
    "gp_weight": (
        {},
        None,
        ["--model.init_args.regularizers", "[{name: gradient_penalty, weight: -1}]"],
        "model.regularizers.weight=-1 is invalid for gradient_penalty",
        ">= 0",
    ),
    "clip": (WGAN, None, ["--model.init_args.constraint", "{name: clip, c: 0}"], "model.constraint.c=0", "> 0"),
    "variant": ({}, None, ["--model", "wgan_gpp"], "model='wgan_gpp' is unknown", "wgan_gp"),
    "variant_class_path": (
        {"class_path": "gan_modules.NoSuchGAN"},
        None,
        [],
        "model='gan_modules.NoSuchGAN' is unknown",
        "wgan_gp",
    ),
    "loss": (SNGAN, None, ["--model.init_args.loss", "hinj"], "model.loss='hinj'", "hinge"),
    "divergence": (
        {},
        None,
        ["--model.init_args.loss", "{name: fgan, divergence: kl2}"],
        "model.loss.divergence='kl2'",
        "kl",
    ),
    "loss_option": (
        {},
        None,
        ["--model.init_args.loss", "{name: hinge, foo: 1}"],
        "model.loss.foo is not an option of the hinge loss",
        "allowed: none",
    ),
    "loss_needs_critic": (
        {},
        None,
        ["--model.init_args.loss", "ebgan"],
        "model.loss=ebgan is invalid with model.critic.arch='mlp'",
        "allowed: model.critic.arch=autoencoder",
    ),
    "minibatch_kernels": (
        NS_GAN,
        None,
        ["--model.init_args.critic", "{arch: mlp, hidden: [8], minibatch_kernels: -1}"],
        "model.critic.minibatch_kernels=-1 is invalid",
        "an integer >= 0",
    ),
    "minibatch_compile_switch": (
        NS_GAN,
        None,
        ["--model.init_args.critic", "{arch: mlp, hidden: [8], minibatch_kernels: 2, minibatch_compile: 3}"],
        "model.critic.minibatch_compile=3 is invalid",
        "allowed: true, false",
    ),
    "minibatch_compile_without_layer": (
        NS_GAN,
        None,
        ["--model.init_args.critic", "{arch: mlp, hidden: [8], minibatch_compile: true}"],
        "model.critic.minibatch_compile=true is invalid with model.critic.minibatch_kernels=0",
        "allowed: false, or minibatch_kernels >= 1",
    ),
    "hidden_width": (
        {},
        None,
        ["--model.init_args.generator", "{arch: mlp, hidden: [8, 0]}"],
        "model.generator.hidden=[8, 0] is invalid",
        "integers >= 1",
    ),
    "dropout": (
        {},
        None,
        ["--model.init_args.critic", "{arch: mlp, hidden: [8], dropout: 1.5}"],
        "model.critic.dropout=1.5 is invalid",
        "a float in [0, 1)",
    ),
    "batch_norm_switch": (
        {},
        None,
        ["--model.init_args.generator", "{arch: mlp, hidden: [8], batch_norm: 3}"],
        "model.generator.batch_norm=3 is invalid",
        "true, false",
    ),
    "activation": (
        {},
        None,
        ["--model.init_args.critic", "{arch: mlp, hidden: [8], activation: elu}"],
        "model.critic.activation='elu' is invalid",
        "relu, leaky_relu, tanh",
    ),
    "critic_norm": (
        NS_GAN,
        DIGITS,
        ["--model.init_args.critic", "{arch: dcgan, width: 8, norm: instance}"],
        "model.critic.norm='instance' is invalid",
        "batch, layer, none",
    ),
    "data_size": (NS_GAN, None, ["--data.init_args.size=-5"], "data.size=-5 is invalid", "an integer >= 1"),
    "image_size": (NS_GAN, DIGITS, ["--data.init_args.image_size", "10"], "10x10", "data.image_size"),
    "batch_below_ranks": (
        NS_GAN,
        None,
        ["--data.init_args.batch_size", "1", "--trainer.strategy", "ddp", "--trainer.devices", "2"],
        "data.batch_size=1",
        "a multiple of 2",
    ),
    "batch_not_divisible": (
        NS_GAN,
        None,
        ["--data.init_args.batch_size", "9", "--trainer.strategy", "ddp", "--trainer.devices", "2"],
        "data.batch_size=9",
        "a multiple of 2",
    ),
    "ddp_spawn_spectral_norm": (
        SNGAN,
        None,
        ["--trainer.strategy", "ddp_spawn", "--trainer.devices", "2"],
        "trainer.strategy='ddp_spawn'",
        "allowed: ddp, ddp_fork",
    ),
    "ddp_static_graph": (
        NS_GAN,
        None,
        ["--trainer.strategy", "lightning.pytorch.strategies.DDPStrategy", "--trainer.strategy.static_graph", "true"],
        "trainer.strategy.static_graph=True",
        "allowed: false",
    ),
    "iterations_per_batch_interval": (
        {},
        None,
        ["--model.init_args.iterations_per_batch", "4", "--checkpoint.every_n_train_steps", "10"],
        "checkpoint.every_n_train_steps=10 is invalid with model.iterations_per_batch=4",
        "a multiple of 4",
    ),
    "iterations_per_batch_warmup": (
        WGAN,
        None,
        ["--model.init_args.iterations_per_batch", "2", "--model.init_args.wgan_warmup", "true"],
        "model.iterations_per_batch=2",
        "1 with model.wgan_warmup=true",
    ),
    "dataset_path": (
        NS_GAN,
        TORCHVISION,
        ["--data.init_args.root", "{tmp}/no_such_folder", "--data.init_args.image_size", "16"],
        "data.root='{tmp}/no_such_folder'",
        "MNIST/raw/train-images-idx3-ubyte.gz",
    ),
}


@pytest.mark.parametrize("case", list(CASES))
def test_bad_value_fails_in_one_line_before_training(case, tmp_path, capsys):
    objective, data, extra, names, allowed = CASES[case]
    if "class_path" in objective:
        config = fit_yaml(tmp_path / "run.yaml", model=objective)
    else:
        config = bad_config(tmp_path / "run.yaml", objective, data)
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
    assert all(name in line for name in presets())


def test_preset_shorthand_selects_the_preset(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["fit", "--model", "wgan_gp", "--print_config"])
    assert exit_info.value.code == 0
    printed = yaml.safe_load(capsys.readouterr().out)["model"]
    assert printed["class_path"] == "gan_modules.AdversarialModule"
    assert (printed["init_args"]["loss"], printed["init_args"]["regularizers"][0]["name"]) == (
        "wasserstein",
        "gradient_penalty",
    )


def test_a_rejected_command_prints_nothing_else_on_stderr(tmp_path):
    """From a shell: Lightning's start-up chatter goes to stdout, stderr holds just the error."""
    config = bad_config(tmp_path / "run.yaml", NS_GAN)
    args = ["fit", "--config", str(config), "--trainer.strategy", "ddp", "--trainer.devices", "2"]
    args += ["--data.init_args.batch_size", "9", "--trainer.default_root_dir", str(tmp_path / "run")]
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).parent.parent)}
    done = subprocess.run([sys.executable, "-m", "gan_modules.cli", *args], capture_output=True, text=True, env=env)
    assert done.returncode == 2
    assert done.stderr.strip().splitlines() == [
        "gan-lab: error: data.batch_size=9 is invalid for 2 processes (trainer.devices x trainer.num_nodes); "
        "allowed: a multiple of 2 (it is the global batch, split evenly over the ranks)"
    ]
