"""End-to-end `gan-lab` runs: fit, outputs under the run root, sample format, resume."""

from __future__ import annotations

import csv
import re
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from conftest import CSV_RUN_LOGGER, fit_yaml

from gan_modules.checkpoints import load_module, read_checkpoint
from gan_modules.cli import main
from gan_modules.compose import presets


def test_fit_writes_checkpoints_grids_and_logs_under_the_root(toy_config, tmp_path):
    assert main(["fit", "--config", str(toy_config)]) == 0
    root = tmp_path / "run"
    assert (root / "checkpoints" / "last.ckpt").is_file()
    assert (root / "checkpoints" / "step0000006.ckpt").is_file()
    assert (root / "samples" / "latest.png").stat().st_size > 1000
    with open(next((root / "logs").rglob("metrics.csv"))) as f:
        rows = list(csv.DictReader(f))
    steps = [int(r["step"]) for r in rows if r.get("train/critic_loss")]
    assert steps == [1, 2, 3, 4, 5, 6]  # logged per generator iteration, not per critic batch
    module = load_module(root / "checkpoints" / "last.ckpt")
    assert module.real_batches_consumed == 12  # n_critic 2 x 6 iterations


def test_a_model_seed_other_than_the_data_seed_trains_logs_and_is_kept(tmp_path, monkeypatch):
    """The draws' seed and the data order's seed are separate settings. The loggers get the model's
    hyperparameters (Lightning refuses to merge the data's when a key such as `seed` differs); the
    checkpoint keeps both, and the resolved config beside it holds the data's too."""
    monkeypatch.chdir(tmp_path)
    config = fit_yaml(
        tmp_path / "fit.yaml",
        trainer={"logger": [CSV_RUN_LOGGER]},
        model={"init_args": {"seed": 5}},
        data={"init_args": {"seed": 7}},
    )
    assert main(["fit", "--config", str(config), "--trainer.default_root_dir", str(tmp_path / "run")]) == 0
    saved = read_checkpoint(tmp_path / "run" / "checkpoints" / "last.ckpt")
    assert saved["hyper_parameters"]["seed"] == 5 and saved["datamodule_hyper_parameters"]["seed"] == 7
    (resolved,) = (tmp_path / "run").rglob("config.yaml")  # LightningCLI's, in the logger's folder
    assert yaml.safe_load(resolved.read_text())["data"]["init_args"]["seed"] == 7
    (logged,) = (tmp_path / "run").rglob("hparams.yaml")
    assert yaml.unsafe_load(logged.read_text())["seed"] == 5


def test_fit_without_checkpointing_trains_and_writes_no_checkpoint(toy_config, tmp_path):
    assert main(["fit", "--config", str(toy_config), "--trainer.enable_checkpointing", "false"]) == 0
    root = tmp_path / "run"
    assert (root / "samples" / "latest.png").is_file()  # the run went to its end
    assert not (root / "checkpoints").exists()


def test_sample_points_are_float32_in_data_units_and_reproducible(toy_config, tmp_path):
    main(["fit", "--config", str(toy_config)])
    ckpt = str(tmp_path / "run" / "checkpoints" / "last.ckpt")
    outs = []
    for seed, name in [(1, "a"), (1, "b"), (2, "c")]:
        out = tmp_path / f"{name}.npz"
        assert main(["sample", "--ckpt_path", ckpt, "--num", "50", "--out", str(out), "--seed", str(seed)]) == 0
        outs.append(np.load(out)["samples"])
    assert outs[0].dtype == np.float32 and outs[0].shape == (50, 2)
    assert np.array_equal(outs[0], outs[1]) and not np.array_equal(outs[0], outs[2])
    module = load_module(ckpt)
    z = torch.randn(50, 2, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        assert np.allclose(outs[0], module.generator.eval()(z).numpy(), atol=1e-6)


def test_sample_images_are_uint8_nhwc(tmp_path):
    root = tmp_path / "img"
    args = [
        "fit",
        "--model",
        "ns_gan",
        "--model.init_args.z_dim",
        "4",
        "--model.init_args.generator",
        "{arch: dcgan, width: 4}",
        "--model.init_args.critic",
        "{arch: dcgan, width: 4}",
        "--data",
        "datamodules.DigitsDataModule",
        "--data.init_args.batch_size",
        "8",
        "--trainer.max_steps",
        "2",
        "--trainer.default_root_dir",
        str(root),
        "--trainer.enable_progress_bar",
        "false",
    ]
    assert main(args) == 0
    out = tmp_path / "s.npz"
    assert (
        main(["sample", "--ckpt_path", str(root / "checkpoints" / "last.ckpt"), "--num", "7", "--out", str(out)]) == 0
    )
    samples = np.load(out)["samples"]
    assert samples.dtype == np.uint8 and samples.shape == (7, 8, 8, 1)
    assert "labels" not in np.load(out)  # an unconditional model has none, and takes no --class
    assert (
        main(["sample", "--ckpt_path", str(root / "checkpoints" / "last.ckpt"), "--class", "1", "--out", str(out)]) == 2
    )


def test_rerunning_the_same_command_resumes_from_last_ckpt(toy_config, tmp_path, capsys):
    main(["fit", "--config", str(toy_config), "--trainer.max_steps", "4"])
    main(["fit", "--config", str(toy_config), "--trainer.max_steps", "6"])
    assert "resuming from" in capsys.readouterr().out
    module = load_module(tmp_path / "run" / "checkpoints" / "last.ckpt")
    assert module.real_batches_consumed == 12
    assert torch.load(tmp_path / "run" / "checkpoints" / "last.ckpt", weights_only=False)["global_step"] == 6


def test_the_final_iteration_is_saved_when_max_steps_is_not_a_checkpoint_step(toy_config, tmp_path):
    main(["fit", "--config", str(toy_config), "--trainer.max_steps", "5"])  # checkpoints every 2
    ckpts = tmp_path / "run" / "checkpoints"
    assert torch.load(ckpts / "last.ckpt", weights_only=False)["global_step"] == 5
    assert sorted(p.name for p in ckpts.glob("step*.ckpt")) == [f"step000000{i}.ckpt" for i in (2, 4, 5)]
    assert load_module(ckpts / "last.ckpt").real_batches_consumed == 10  # n_critic 2 x 5 iterations


def test_print_config_shows_the_resolved_model(toy_config, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["fit", "--config", str(toy_config), "--print_config"])
    assert exit_info.value.code == 0
    printed = capsys.readouterr().out
    assert "class_path: gan_modules.AdversarialModule" in printed and "n_critic: 2" in printed


def _digits_fit(root, max_steps: int) -> list[str]:
    """A WGAN-GP fit on digits with the reference-setup options: dequantised data, DCGAN init, mean pooling."""
    return [
        "fit",
        "--model",
        "wgan_gp",
        "--model.init_args.n_critic",
        "2",
        "--model.init_args.z_dim",
        "4",
        "--model.init_args.generator",
        "{arch: dcgan, width: 4, init: dcgan}",
        "--model.init_args.critic",
        "{arch: resnet, width: 4, pooling: mean, init: glorot}",
        "--data",
        "datamodules.DigitsDataModule",
        "--data.init_args.batch_size",
        "8",
        "--data.init_args.dequantize",
        "true",
        "--trainer.max_steps",
        str(max_steps),
        "--trainer.default_root_dir",
        str(root),
        "--trainer.enable_progress_bar",
        "false",
        "--trainer.deterministic",
        "true",
    ]


def test_a_resumed_dequantised_run_ends_with_the_weights_of_an_uninterrupted_one(tmp_path):
    assert main(_digits_fit(tmp_path / "straight", 4)) == 0
    assert main(_digits_fit(tmp_path / "resumed", 2)) == 0
    assert main(_digits_fit(tmp_path / "resumed", 4)) == 0  # continues from last.ckpt
    straight, resumed = (load_module(tmp_path / r / "checkpoints" / "last.ckpt") for r in ("straight", "resumed"))
    assert resumed.critic.pooling == "mean"
    for a, b in zip(straight.state_dict().values(), resumed.state_dict().values(), strict=True):
        assert torch.equal(a, b)


# ------------------------------------------------- configs: --model P --data D, as documented
CONFIGS = Path(__file__).resolve().parents[1] / "configs"
SN_TABLE_1 = {  # Miyato et al. 2018, Table 1: alpha, beta1, beta2, n_dis (typed in from the paper)
    "A": (1e-4, 0.5, 0.9, 5),
    "B": (1e-4, 0.5, 0.999, 1),
    "C": (2e-4, 0.5, 0.999, 1),
    "D": (1e-3, 0.5, 0.9, 5),
    "E": (1e-3, 0.5, 0.999, 5),
    "F": (1e-3, 0.9, 0.999, 5),
}


@pytest.mark.parametrize(
    "path, keys",
    [(p, ("lr_g", "n_critic")) for p in sorted((CONFIGS / "model").glob("*.yaml"))]
    + [(p, ("batch_size",)) for p in sorted((CONFIGS / "data").glob("*.yaml"))]
    + [(p, ("max_steps",)) for p in sorted((CONFIGS / "family").glob("*.yaml"))],
    ids=lambda v: f"{v.parent.name}/{v.stem}" if isinstance(v, Path) else None,
)
def test_config_values_cite_their_source(path, keys):
    text = path.read_text()
    for key in keys:
        (row,) = [line for line in text.splitlines() if re.match(rf"\s+{key}:", line)]
        assert "#" in row, f"{path.name}: {key} has no source comment"


@pytest.mark.parametrize("setting", sorted(SN_TABLE_1))
def test_sngan_settings_are_table_1_of_miyato(setting):
    config = yaml.safe_load((CONFIGS / "experiment" / "sngan" / f"cifar10_setting_{setting}.yaml").read_text())
    args = config["model"]["init_args"]
    alpha, beta1, beta2, n_dis = SN_TABLE_1[setting]
    assert (args["lr_g"], args["lr_d"], args["betas"], args["n_critic"]) == (alpha, alpha, [beta1, beta2], n_dis)
    preset = yaml.safe_load((CONFIGS / "model" / "sngan.yaml").read_text())["init_args"]
    assert preset["constraint"] == "spectral_norm"


@pytest.mark.parametrize("preset", sorted(presets()))
def test_every_preset_trains_on_ring8_through_the_documented_command(preset, tmp_path, monkeypatch, capsys):
    """`gan-lab fit --model <preset> --data ring8`, shortened to 2 generator iterations."""
    monkeypatch.chdir(tmp_path)
    root = tmp_path / "run"
    args = ["fit", "--model", preset, "--data", "ring8", "--trainer.max_steps", "2"]
    args += ["--trainer.enable_progress_bar", "false", "--trainer.default_root_dir", str(root)]
    assert main(args) == 0
    out = capsys.readouterr().out
    assert f"gan-lab: composed model/{preset} + data/ring8 + family/toy2d" in out
    assert "done after 2 generator iterations" in out and "gan-lab:   W&B offline" in out  # the default logger
    assert (root / "checkpoints" / "last.ckpt").is_file()
    assert (root / "samples" / "latest.png").is_file()
