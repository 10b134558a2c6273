"""configs/<variant>/<dataset>.yaml: every file parses and instantiates through the real CLI, carries
its citations, and the toy ones train through `gan-lab fit --config ...` exactly as documented."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

from datamodules import GANDataModule, TorchvisionDataModule
from gan_modules import SNGAN, VARIANTS
from gan_modules.cli import GanLabCLI, main
from gan_modules.engine import AdversarialModule

CONFIGS = Path(__file__).resolve().parents[1] / "configs"
DATASETS = ("ring8", "grid25", "swissroll", "digits", "mnist", "cifar10")
SN_TABLE_1 = {  # Miyato et al. 2018, Table 1: alpha, beta1, beta2, n_dis (typed in from the paper)
    "A": (1e-4, 0.5, 0.9, 5),
    "B": (1e-4, 0.5, 0.999, 1),
    "C": (2e-4, 0.5, 0.999, 1),
    "D": (1e-3, 0.5, 0.9, 5),
    "E": (1e-3, 0.5, 0.999, 5),
    "F": (1e-3, 0.9, 0.999, 5),
}
ALL = [CONFIGS / v / f"{d}.yaml" for v in VARIANTS for d in DATASETS]
ALL += [CONFIGS / "sngan" / f"cifar10_setting_{s}.yaml" for s in SN_TABLE_1]


def test_every_variant_has_a_config_per_dataset_and_nothing_else():
    present = {p for v in VARIANTS for p in (CONFIGS / v).glob("*.yaml")}
    assert present == set(ALL)


def instantiate(path: Path) -> GanLabCLI:
    """Parse and build trainer, model and datamodule exactly as `gan-lab fit` would, without fitting."""
    return GanLabCLI(
        AdversarialModule,
        GANDataModule,
        subclass_mode_model=True,
        subclass_mode_data=True,
        args=["--config", str(path)],
        run=False,
        auto_configure_optimizers=False,
    )


@pytest.mark.parametrize("path", ALL, ids=lambda p: f"{p.parent.name}/{p.stem}")
def test_config_instantiates_and_cites_its_defaults(path, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # relative run folders must not land in the repository
    variant = path.parent.name
    cli = instantiate(path)
    assert type(cli.model) is VARIANTS[variant]
    assert isinstance(cli.datamodule, GANDataModule)
    assert cli.trainer.default_root_dir == f"runs/{variant}/{path.stem}"
    assert cli.trainer.loggers, "a logger entry is required"
    if path.stem in ("mnist", "cifar10") or path.stem.startswith("cifar10_"):
        assert isinstance(cli.datamodule, TorchvisionDataModule)
        assert (cli.datamodule.name, str(cli.datamodule.root), cli.datamodule.download) == (
            path.stem.split("_")[0],
            "data",
            True,
        )
    else:
        assert cli.datamodule.name == path.stem
    text = path.read_text()
    for key in ("max_steps", "batch_size", "lr_g", "n_critic"):
        (row,) = [line for line in text.splitlines() if re.match(rf"\s+{key}:", line)]
        assert "#" in row, f"{path.name}: {key} has no source comment"


@pytest.mark.parametrize("setting", sorted(SN_TABLE_1))
def test_sngan_settings_are_table_1_of_miyato(setting):
    config = yaml.safe_load((CONFIGS / "sngan" / f"cifar10_setting_{setting}.yaml").read_text())
    args = config["model"]["init_args"]
    alpha, beta1, beta2, n_dis = SN_TABLE_1[setting]
    assert (args["lr_g"], args["lr_d"], args["betas"], args["n_critic"]) == (alpha, alpha, [beta1, beta2], n_dis)
    assert config["model"]["class_path"] == f"{SNGAN.__module__.split('.')[0]}.SNGAN"


@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_ring8_config_trains_through_the_cli(variant, tmp_path, monkeypatch, capsys):
    """The documented command, shortened to 2 generator iterations."""
    monkeypatch.chdir(tmp_path)
    root = tmp_path / "run"
    code = main(
        [
            "fit",
            "--config",
            str(CONFIGS / variant / "ring8.yaml"),
            "--trainer.max_steps",
            "2",
            "--trainer.enable_progress_bar",
            "false",
            "--trainer.default_root_dir",
            str(root),
        ]
    )
    assert code == 0
    assert "done after 2 generator iterations" in capsys.readouterr().out
    assert (root / "checkpoints" / "last.ckpt").is_file()
    assert (root / "samples" / "latest.png").is_file()
