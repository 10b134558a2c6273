"""`gan-lab evaluate` on real checkpoints: metric set by data kind, JSON keys as logged, clear errors."""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path

import lightning as L
import pytest

from datamodules import DigitsDataModule, Toy2DDataModule
from gan_modules import AdversarialModule
from gan_modules.checkpoints import load_module
from gan_modules.commands import evaluate
from gan_modules.compose import preset
from gan_modules.metrics import exact_emd, mode_metrics
from gan_modules.metrics.extractors import INCEPTION_FILE
from gan_modules.metrics.suite import RealData, generated_samples

sys.path.insert(0, str(Path(__file__).parent / "scripts_metrics"))
import extractor_fixtures

from gan_modules.trainers import bare_trainer


def _checkpoint(root: Path, model: L.LightningModule, dm: L.LightningDataModule, steps: int = 3) -> Path:
    L.seed_everything(0)
    trainer = bare_trainer(steps, default_root_dir=root)
    trainer.fit(model, dm)
    path = root / "model.ckpt"
    trainer.save_checkpoint(path)
    return path


pytestmark = pytest.mark.xdist_group("evaluate")  # one worker builds the module fixtures, once


@pytest.fixture(scope="module")
def toy_ckpt(tmp_path_factory) -> Path:
    nets = {"generator": {"arch": "mlp", "hidden": [16, 16]}, "critic": {"arch": "mlp", "hidden": [16, 16]}}
    model = preset("wgan_gp", data_shape=(2,), z_dim=2, **nets)
    return _checkpoint(tmp_path_factory.mktemp("toy"), model, Toy2DDataModule("ring8", size=1500, batch_size=64))


@pytest.fixture(scope="module")
def digits_ckpt(tmp_path_factory) -> Path:
    nets = {"generator": {"arch": "dcgan", "width": 8}, "critic": {"arch": "dcgan", "width": 8}}
    model = AdversarialModule(data_shape=(1, 8, 8), z_dim=8, **nets)
    return _checkpoint(tmp_path_factory.mktemp("digits"), model, DigitsDataModule(image_size=8, batch_size=32))


def _not_json(constant: str) -> None:
    raise ValueError(f"{constant} is not JSON")


def test_real_scores_draws_of_the_data_at_the_analytic_floor(toy_ckpt, tmp_path, capsys):
    """--real: draws of ring8's points in place of the generator cover all 8 modes, and the share within
    3 std of a mode (PacGAN's high quality) is a 2D Gaussian's, 1 - exp(-9 / 2) = 98.89%."""
    out = tmp_path / "real.json"
    assert evaluate.main(["--ckpt_path", str(toy_ckpt), "--real", "--json", str(out)]) == 0
    real = json.loads(out.read_text())
    assert real["modes"] == 8
    assert real["hq_pct"] == pytest.approx(100 * (1 - math.exp(-4.5)), abs=1.2)  # sd of the estimate ~0.35
    assert real["reverse_kl"] < 0.02  # multinomial noise only: about (8 - 1) / (2 x 2500) per draw
    assert real["protocol"]["generator"] == RealData.protocol_name and real["step"] is None
    assert "2500 real draws vs 1500 real (ring8 train split)" in capsys.readouterr().out
    assert evaluate.main(["--ckpt_path", str(toy_ckpt), "--json", str(tmp_path / "fake.json")]) == 0
    assert real["emd"] < 0.1 * json.loads((tmp_path / "fake.json").read_text())["emd"]


def test_points_checkpoint_gets_mode_metrics_and_emd_in_table_and_json(toy_ckpt, tmp_path, capsys):
    out = tmp_path / "eval.json"
    assert evaluate.main(["--ckpt_path", str(toy_ckpt), "--num", "500", "--json", str(out)]) == 0
    payload = json.loads(out.read_text(), parse_constant=_not_json)
    fake = generated_samples(load_module(toy_ckpt), 500, 100, seed=0)
    dm = Toy2DDataModule("ring8", size=1500, batch_size=64)
    expected = {**mode_metrics(fake, dm.modes, dm.mode_std), "emd": exact_emd(fake, dm.real_samples(500, seed=0))}
    assert expected["reverse_kl"] == math.inf  # after 3 iterations no generated point is near a mode
    assert payload["reverse_kl"] is None and payload["non_finite"] == {"reverse_kl": "inf"}
    assert evaluate.read_results(out)["reverse_kl"] == math.inf
    finite = {k: v for k, v in expected.items() if math.isfinite(v)}
    assert {k: payload[k] for k in finite} == pytest.approx(finite)
    protocol = payload["protocol"]
    assert protocol["num_fake"] == 500 and protocol["num_real"] == 500  # --num_real defaults to --num
    assert payload["step"] == 3 and payload["ckpt_path"] == str(toy_ckpt)
    table = capsys.readouterr().out
    assert "500 generated vs 500 real (ring8 train split)" in table and "reverse_kl" in table and "emd" in table


def test_image_checkpoint_metrics_equal_torch_fidelity(digits_ckpt, tmp_path):
    name = extractor_fixtures.register()
    out = tmp_path / "eval.json"
    args = ["--ckpt_path", str(digits_ckpt), "--extractor", name, "--num", "60", "--num_real", "80"]
    assert evaluate.main([*args, "--batch_size", "25", "--cache_dir", str(tmp_path), "--json", str(out)]) == 0
    payload = json.loads(out.read_text())
    fake = generated_samples(load_module(digits_ckpt), 60, 25, seed=0)
    real = DigitsDataModule(image_size=8).real_samples(80, seed=0)
    reference = extractor_fixtures.fidelity_metrics(fake, real, kid_subset_size=60)
    assert {k: payload[k] for k in reference} == pytest.approx(reference, rel=1e-4)
    assert payload["protocol"]["extractor"] == name and payload["protocol"]["kid_subset_size"] == 60


def test_real_image_draws_are_rows_of_the_reference_so_their_precision_is_one(digits_ckpt, tmp_path):
    """Every draw is one of the 1,797 real digits, so its feature lies inside its own k-NN ball: precision
    is exactly 1 (Kynkaanniemi et al. 2019), while the generator of 3 iterations scores far below."""
    name = extractor_fixtures.register()
    args = ["--ckpt_path", str(digits_ckpt), "--extractor", name, "--num", "200", "--num_real", "1797"]
    args += ["--metrics", "pr", "--cache_dir", str(tmp_path)]
    assert evaluate.main([*args, "--real", "--json", str(tmp_path / "real.json")]) == 0
    assert evaluate.main([*args, "--json", str(tmp_path / "fake.json")]) == 0
    real, fake = (json.loads((tmp_path / f"{w}.json").read_text()) for w in ("real", "fake"))
    assert real["precision"] == 1.0 and real["protocol"]["num_real"] == 1797
    assert fake["precision"] < 0.5


def test_offline_inception_is_a_one_line_error_not_a_traceback(digits_ckpt, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    assert evaluate.main(["--ckpt_path", str(digits_ckpt), "--num", "20"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("gan-lab evaluate: error: Inception weights") and INCEPTION_FILE in err
    assert "--weights_path" in err and "Traceback" not in err and len(err.splitlines()) == 1


def test_bad_arguments_are_one_line_errors(toy_ckpt, tmp_path, capsys):
    assert evaluate.main(["--ckpt_path", str(tmp_path / "missing.ckpt")]) == 2
    assert "--ckpt_path=" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        evaluate.main(["--ckpt_path", str(toy_ckpt), "--num", "1"])
    assert "--num=1 is invalid; allowed: an integer >= 2" in capsys.readouterr().err
    assert evaluate.main(["--ckpt_path", str(toy_ckpt), "--metrics", "fid,lpips"]) == 2
    assert "evaluate.metrics=['fid', 'lpips'] is invalid" in capsys.readouterr().err
