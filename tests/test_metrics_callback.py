"""The metrics callback in real Lightning runs, checked against torch-fidelity on the same samples."""

from __future__ import annotations

import csv
import sys
from pathlib import Path

import lightning as L
import pytest
import torch
import yaml
from lightning.pytorch.loggers import CSVLogger

from datamodules import DigitsDataModule, Toy2DDataModule
from gan_modules import AdversarialModule
from gan_modules.callbacks import RunCheckpoint
from gan_modules.callbacks.metrics import GenerativeMetrics
from gan_modules.compose import preset
from gan_modules.metrics import exact_emd, mode_metrics
from gan_modules.metrics.collective import SingleProcess
from gan_modules.metrics.suite import ImageEvaluator, MetricSettings, generated_samples

sys.path.insert(0, str(Path(__file__).parent / "scripts_metrics"))
import extractor_fixtures

from gan_modules.trainers import bare_trainer

TINY_IMAGE_NETS = {"generator": {"arch": "dcgan", "width": 8}, "critic": {"arch": "dcgan", "width": 8}, "z_dim": 8}
TINY_POINT_NETS = {"generator": {"arch": "mlp", "hidden": [16, 16]}, "critic": {"arch": "mlp", "hidden": [16, 16]}}


def _trainer(root: Path, steps: int, callbacks: list, **kwargs) -> L.Trainer:
    kwargs.setdefault("logger", CSVLogger(root, name="logs"))
    kwargs.setdefault("enable_checkpointing", True)  # Lightning's default: these tests read checkpoints
    return bare_trainer(steps, callbacks, default_root_dir=root, **kwargs)


def _csv_rows(trainer: L.Trainer) -> list[dict[str, str]]:
    with open(Path(trainer.logger.log_dir) / "metrics.csv") as handle:
        return list(csv.DictReader(handle))


def _logged(rows: list[dict[str, str]], name: str) -> dict[int, float]:
    return {int(r["step"]): float(r[name]) for r in rows if r.get(name)}


@pytest.fixture(scope="module")
def image_run(tmp_path_factory):
    """3 generator iterations of a tiny DCGAN on 8x8 digits; metrics at step 2 and at the end (3)."""
    name = extractor_fixtures.register()
    root = tmp_path_factory.mktemp("image_run")
    L.seed_everything(0)
    dm = DigitsDataModule(image_size=8, batch_size=32)
    model = AdversarialModule(data_shape=(1, 8, 8), ema_decay=0.5, **TINY_IMAGE_NETS)
    callback = GenerativeMetrics(
        every_n_steps=2, num_fake=120, num_real=150, extractor=name, batch_size=32, cache_dir=str(root / "cache")
    )
    trainer = _trainer(root, 3, [callback, RunCheckpoint(every_n_train_steps=3)])
    trainer.fit(model, dm)
    return trainer, model, dm, callback


def test_callback_metrics_equal_torch_fidelity_calculate_metrics_on_the_same_samples(image_run):
    _, model, dm, callback = image_run
    fake = generated_samples(model, 120, 32, seed=0)  # the samples the callback drew at the last evaluation
    real = dm.real_samples(150, seed=0)
    reference = extractor_fixtures.fidelity_metrics(
        fake, real, kid_subset_size=120
    )  # KID subset clamped to the sample count
    results = callback.last_results
    for key in ("fid", "is_mean", "is_std", "kid_mean", "kid_std"):
        assert results[key] == pytest.approx(reference[key], rel=1e-4), key
    assert results["precision"] == reference["precision"] and results["recall"] == reference["recall"]
    assert results["fid"] > 0 and results["is_mean"] > 1


def test_metrics_are_logged_at_generator_steps_with_the_best_value_and_the_protocol(image_run):
    trainer, _, _, callback = image_run
    rows = _csv_rows(trainer)
    fid = _logged(rows, "metrics/fid")
    assert sorted(fid) == [2, 3]  # every 2 generator iterations + once at the end
    assert _logged(rows, "metrics/best_fid")[3] == pytest.approx(min(fid.values()))
    assert fid[3] == pytest.approx(callback.last_results["fid"])
    assert set(_logged(rows, "metrics/kid_mean")) == {2, 3} and set(_logged(rows, "metrics/recall")) == {2, 3}
    hparams = yaml.unsafe_load((Path(trainer.logger.log_dir) / "hparams.yaml").read_text())  # model hparams hold tuples
    protocol = hparams["metrics_protocol"]
    assert protocol["num_fake"] == 120 and protocol["num_real"] == 150 and protocol["real_split"] == "train"
    assert protocol["extractor"] == "tiny-cnn" and protocol["kid_subset_size"] == 120 and protocol["is_splits"] == 10
    assert protocol["generator"] == "ema"


def test_best_fid_checkpoint_is_kept_and_checkpoints_hold_no_extractor_tensors(image_run):
    trainer, model, _, callback = image_run
    best = Path(trainer.default_root_dir) / "checkpoints" / "best_fid.ckpt"
    last = Path(trainer.default_root_dir) / "checkpoints" / "last.ckpt"
    fid = _logged(_csv_rows(trainer), "metrics/fid")
    for path in (best, last):
        ckpt = torch.load(path, map_location="cpu", weights_only=False)
        assert set(ckpt["state_dict"]) == set(model.state_dict())  # generator, critic, EMA, fixed noise only
        state = ckpt["callbacks"][next(k for k in ckpt["callbacks"] if k.startswith("GenerativeMetrics"))]
        assert not any(isinstance(v, torch.Tensor) for v in state.values())
    best_ckpt = torch.load(best, map_location="cpu", weights_only=False)
    best_step = min(fid, key=fid.get)
    assert best_ckpt["global_step"] == best_step and callback.best == pytest.approx(fid[best_step])


def test_a_torchmetrics_metric_on_the_module_would_bloat_the_checkpoint(tmp_path):
    """The trap the callback avoids, measured: FID as a module attribute carries the Inception network."""
    from torchmetrics.image.fid import FrechetInceptionDistance

    weights = extractor_fixtures.random_inception_weights(tmp_path)
    lean = AdversarialModule(data_shape=(1, 8, 8), **TINY_IMAGE_NETS)
    bloated = AdversarialModule(data_shape=(1, 8, 8), **TINY_IMAGE_NETS)
    bloated.fid = FrechetInceptionDistance(feature=2048, feature_extractor_weights_path=str(weights))
    extra = len(bloated.state_dict()) - len(lean.state_dict())
    assert extra > 500  # Inception's parameters and BN buffers (566 in the measurement)


def test_real_feature_cache_is_reused_verified_and_recomputed_when_stale(tmp_path):
    name = extractor_fixtures.register()
    settings = MetricSettings(num_fake=40, num_real=60, extractor=name, batch_size=16, cache_dir=str(tmp_path))
    model = AdversarialModule(data_shape=(1, 8, 8), **TINY_IMAGE_NETS)
    dm = DigitsDataModule(image_size=8)

    def evaluate():
        messages: list[str] = []
        evaluator = ImageEvaluator(settings, say=messages.append)
        return evaluator.evaluate(model, dm, SingleProcess()), " | ".join(messages), evaluator

    first, said, evaluator = evaluate()
    path = evaluator.cache.path({**evaluator.real_key(dm, dm.real_samples(60, seed=0))})
    assert "no cached real features" in said and path.is_file()
    assert path.name == "digits-train-1797-1x8x8-tiny-cnn-n60.pt"

    second, said, _ = evaluate()
    assert said.startswith("using cached real features") and second == first

    dm.stored[:] = 255 - dm.stored  # same dataset name, split, size and shape; different pixels
    third, said, _ = evaluate()
    assert "do not match" in said and "content_sha256" in said and third["fid"] != first["fid"]
    assert evaluate()[1].startswith("using cached real features")  # the recomputed entry replaced the stale one

    path.write_bytes(b"not a checkpoint")
    fourth, said, _ = evaluate()
    assert "unreadable" in said and fourth == third


class Replay:
    """A 'generator' that replays noisy held-out real digits: precision and recall strictly inside (0, 1)."""

    def __init__(self, images: torch.Tensor) -> None:
        self.images = images

    def sample(self, n: int, seed: int, batch_size: int) -> torch.Tensor:
        gen = torch.Generator().manual_seed(seed)
        idx = torch.randint(len(self.images), (n,), generator=gen)
        return (self.images[idx] + 0.6 * torch.randn(n, *self.images.shape[1:], generator=gen)).clamp(-1, 1)


def test_evaluator_equals_torch_fidelity_when_precision_and_recall_are_nontrivial(tmp_path):
    name = extractor_fixtures.register()
    dm = DigitsDataModule(image_size=8)
    generator = Replay(dm.decode(dm.stored[-300:]))
    settings = MetricSettings(num_fake=130, num_real=110, extractor=name, batch_size=25, cache_dir=str(tmp_path))
    results = ImageEvaluator(settings, say=lambda _: None).evaluate(generator, dm, SingleProcess())
    reference = extractor_fixtures.fidelity_metrics(
        generated_samples(generator, 130, 25, seed=0), dm.real_samples(110, seed=0), 110
    )
    for key, value in reference.items():
        assert results[key] == pytest.approx(value, rel=1e-4), key
    assert 0 < results["precision"] < 1 and 0 < results["recall"] < 1


def test_point_data_gets_mode_metrics_and_emd_and_a_best_emd_checkpoint(tmp_path):
    L.seed_everything(0)
    dm = Toy2DDataModule("ring8", size=2000, batch_size=64)
    model = preset("wgan_gp", data_shape=(2,), z_dim=2, **TINY_POINT_NETS)
    callback = GenerativeMetrics(every_n_steps=2, num_fake=300, num_real=400, batch_size=64)
    trainer = _trainer(tmp_path, 4, [callback])
    trainer.fit(model, dm)
    rows = _csv_rows(trainer)
    for key in ("modes", "hq_pct", "reverse_kl", "emd"):
        assert set(_logged(rows, f"metrics/{key}")) == {2, 4}, key
    fake = generated_samples(model, 300, 64, seed=0)
    expected = {**mode_metrics(fake, dm.modes, dm.mode_std), "emd": exact_emd(fake, dm.real_samples(400, seed=0))}
    assert callback.last_results == pytest.approx(expected)
    assert (tmp_path / "checkpoints" / "best_emd.ckpt").is_file()
    assert callback.protocol["num_fake"] == 300 and callback.protocol["dataset"] == "ring8"
    assert "metrics" not in callback.protocol  # the whole point set, as in every earlier protocol


@pytest.mark.parametrize("metrics", [["modes"], ["emd"]])
def test_point_metrics_can_be_chosen_and_a_partial_set_is_on_record(tmp_path, metrics):
    """Curves every few thousand steps can skip the exact EMD (a second per evaluation); what is
    computed equals the functions themselves, and the protocol says what was left out."""
    L.seed_everything(0)
    dm = Toy2DDataModule("ring8", size=2000, batch_size=64)
    model = preset("wgan_gp", data_shape=(2,), z_dim=2, **TINY_POINT_NETS)
    callback = GenerativeMetrics(every_n_steps=2, num_fake=300, num_real=400, batch_size=64, metrics=metrics)
    _trainer(tmp_path, 2, [callback]).fit(model, dm)
    fake = generated_samples(model, 300, 64, seed=0)
    full = {**mode_metrics(fake, dm.modes, dm.mode_std), "emd": exact_emd(fake, dm.real_samples(400, seed=0))}
    chosen = ["emd"] if metrics == ["emd"] else ["modes", "hq_pct", "reverse_kl"]
    assert callback.last_results == pytest.approx({k: full[k] for k in chosen})
    assert callback.protocol["metrics"] == metrics
    only_fid = r"^metrics\.metrics=\['fid'\] has no points metric; allowed: \['modes', 'emd'\]$"
    with pytest.raises(ValueError, match=only_fid):
        _trainer(tmp_path / "fid", 1, [GenerativeMetrics(metrics=["fid"])]).fit(model, dm)


def test_evaluation_does_not_change_the_training_trajectory(tmp_path):
    def train(callbacks):
        L.seed_everything(0)
        model = preset("wgan_gp", data_shape=(2,), z_dim=2, n_critic=2, **TINY_POINT_NETS)
        _trainer(tmp_path, 4, callbacks, logger=False, enable_checkpointing=False).fit(
            model, Toy2DDataModule("ring8", size=512, batch_size=32)
        )
        return model.generator.state_dict()

    plain = train([])
    evaluated = train([GenerativeMetrics(every_n_steps=1, num_fake=50, num_real=50, save_best=False)])
    assert all(torch.equal(plain[k], evaluated[k]) for k in plain)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"every_n_steps": 0}, r"metrics\.every_n_steps=0 is invalid; allowed: an integer >= 1"),
        ({"num_fake": 1}, r"metrics\.num_fake=1 is invalid; allowed: null or an integer >= 2"),
        ({"num_fake": 5}, r"metrics\.num_fake=5 is invalid; allowed: >= is_splits=10"),
        ({"metrics": ["fid", "lpips"]}, r"metrics\.metrics=\['fid', 'lpips'\] is invalid; allowed: a subset of"),
        ({"kid_subset_size": 1}, r"metrics\.kid_subset_size=1 is invalid"),
    ],
)
def test_bad_settings_fail_at_construction_with_one_line(kwargs, message):
    with pytest.raises(ValueError, match=message) as info:
        GenerativeMetrics(**kwargs)
    assert "\n" not in str(info.value)
