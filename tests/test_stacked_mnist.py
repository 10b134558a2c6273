"""Stacked MNIST: the datamodule, and the mode metrics on real stacked digits and in gan-lab evaluate.

Tests build the stacked set from scikit-learn's bundled 8x8 digits, written as MNIST's IDX test file,
and label channels with a digit classifier trained on them, so they need no MNIST download.
"""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from datamodules import DigitsDataModule, MissingDataError, StackedMNISTDataModule, to_uint8_images
from datamodules.stream import GlobalBatchStream
from gan_modules import AdversarialModule
from gan_modules.callbacks.metrics import GenerativeMetrics
from gan_modules.checkpoints import load_module
from gan_modules.commands import evaluate
from gan_modules.metrics.stacked import ChannelDigits, mode_ids, stacked_mode_metrics
from gan_modules.metrics.suite import ImageEvaluator, MetricSettings, generated_samples
from gan_modules.trainers import bare_trainer

sys.path.insert(0, str(Path(__file__).parent / "scripts_metrics"))
import extractor_fixtures

DIGITS = DigitsDataModule()


pytestmark = pytest.mark.xdist_group("stacked_mnist")  # one worker builds the module fixtures, once


@pytest.fixture(scope="module")
def mnist_root(tmp_path_factory) -> Path:
    return extractor_fixtures.digits_as_mnist(tmp_path_factory.mktemp("mnist"))


@pytest.fixture(scope="module")
def classifier(tmp_path_factory) -> Path:
    return extractor_fixtures.digits_classifier(tmp_path_factory.mktemp("classifier"))


def _stacked(root: Path, **kwargs) -> StackedMNISTDataModule:
    return StackedMNISTDataModule(root=str(root), split="test", download=False, image_size=8, **kwargs)


def test_mode_ids_and_the_kl_of_a_hand_made_histogram():
    digits = torch.tensor([[1, 2, 3], [0, 0, 7], [1, 2, 3]])
    assert mode_ids(digits).tolist() == [123, 7, 123]
    out = stacked_mode_metrics(digits, torch.tensor([[0.5, 1.0, 1.0], [1.0, 1.0, 1.0], [0.5, 1.0, 1.0]]))
    # p = (2/3, 1/3) over 1,000 modes: KL = 2/3 log(2/3 * 1000) + 1/3 log(1/3 * 1000)
    assert out["modes"] == 2.0
    assert out["reverse_kl"] == pytest.approx(2 / 3 * math.log(2000 / 3) + 1 / 3 * math.log(1000 / 3), rel=1e-12)
    # each channel holds two digits at 2/3, 1/3 over 10: 3 x (2/3 log(20/3) + 1/3 log(10/3))
    assert out["channel_kl"] == pytest.approx(3 * (2 / 3 * math.log(20 / 3) + 1 / 3 * math.log(10 / 3)), rel=1e-12)
    assert out["digit_confidence"] == pytest.approx(8 / 9, rel=1e-12)
    every_mode = torch.stack([torch.arange(1000) // 100, torch.arange(1000) // 10 % 10, torch.arange(1000) % 10], 1)
    assert stacked_mode_metrics(every_mode.repeat(26, 1)) == {"modes": 1000.0, "reverse_kl": 0.0, "channel_kl": 0.0}


def test_the_kl_splits_into_the_channels_digit_kls_and_their_total_correlation():
    """KL(modes || uniform) = sum_c KL(digits_c || uniform) + total correlation: balanced digits copied
    into all three channels (10 modes) have no digit part and a total correlation of 2 log 10; one
    channel stuck on a digit, independent of the others, has no dependence part."""
    copied = torch.arange(10).repeat(30).unsqueeze(1).expand(-1, 3)
    out = stacked_mode_metrics(copied)
    assert out["modes"] == 10.0 and out["channel_kl"] == 0.0
    assert out["reverse_kl"] == pytest.approx(math.log(100), rel=1e-12)
    stuck = torch.stack([torch.full((100,), 1), torch.arange(100) // 10, torch.arange(100) % 10], 1)
    out = stacked_mode_metrics(stuck)
    assert out["modes"] == 100.0 and out["channel_kl"] == pytest.approx(math.log(10), rel=1e-12)
    assert out["reverse_kl"] == pytest.approx(out["channel_kl"], rel=1e-12)
    gen = torch.Generator().manual_seed(0)
    skewed = torch.multinomial(torch.tensor([5.0, *[1.0] * 9]), 3 * 5000, True, generator=gen).view(5000, 3)
    skewed[:, 2] = torch.where(torch.rand(5000, generator=gen) < 0.5, skewed[:, 0], skewed[:, 2])  # dependent
    out = stacked_mode_metrics(skewed)
    counts = np.bincount(mode_ids(skewed).numpy(), minlength=1000).reshape(10, 10, 10) / 5000
    marginals = [counts.sum(axis=(1, 2)), counts.sum(axis=(0, 2)), counts.sum(axis=(0, 1))]
    product = np.einsum("i,j,k->ijk", *marginals)
    nz = counts > 0
    total_correlation = float(np.sum(counts[nz] * np.log(counts[nz] / product[nz])))
    assert total_correlation > 0.05
    assert out["reverse_kl"] == pytest.approx(out["channel_kl"] + total_correlation, rel=1e-9)


def test_real_stacked_digits_cover_every_mode_with_a_kl_near_zero(mnist_root):
    """26,000 stacked images (PacGAN's count): their true modes are all 1,000; the KL is sampling noise."""
    dm = _stacked(mnist_root, size=26_000)
    triples = dm.triples(len(DIGITS))
    for i in (0, 1, 12_345, 25_999):  # channel c of image i is source digit triples[i, c]
        assert torch.equal(dm.stored[i], DIGITS.stored[triples[i], 0])
    true_digits = torch.as_tensor(DIGITS.labels())[triples]
    true_ids = mode_ids(true_digits)
    out = stacked_mode_metrics(true_digits)
    counts = np.bincount(true_ids.numpy(), minlength=1000)
    p = counts / counts.sum()
    assert out["modes"] == len(set(true_ids.tolist())) == 1000
    assert out["reverse_kl"] == pytest.approx(float(np.sum(p * np.log(p * 1000))), rel=1e-9)
    assert out["reverse_kl"] < 0.03  # multinomial noise: about (1000 - 1) / (2 * 26000) = 0.019


def test_the_classifier_reads_each_channel_so_recognised_digits_give_their_true_modes(classifier):
    digits = ChannelDigits(classifier)
    labels = torch.as_tensor(DIGITS.labels())
    recognised = torch.nonzero(digits(DIGITS.stored)[:, 0] == labels).squeeze(1)
    assert len(recognised) > 0.9 * len(labels)
    gen = torch.Generator().manual_seed(0)
    triples = recognised[torch.randint(len(recognised), (600, 3), generator=gen)]
    images = DIGITS.stored[triples, 0]  # (600, 3, 8, 8) real stacked digits
    true_ids = mode_ids(labels[triples])
    assert torch.equal(mode_ids(digits(images)), true_ids)
    read, confidence = digits.read(images)
    out = stacked_mode_metrics(read, confidence)
    assert out["modes"] == len(set(true_ids.tolist())) and torch.equal(read, digits(images))
    noise = torch.randint(0, 256, images.shape, dtype=torch.uint8, generator=gen)
    _, unsure = digits.read(noise)
    assert out["digit_confidence"] > 0.8 > float(unsure.mean())  # real digits read surely, noise not


def test_the_stacked_set_is_seeded_and_served_by_the_resumable_stream(mnist_root):
    dm, same, other = (
        _stacked(mnist_root, size=500),
        _stacked(mnist_root, size=500),
        _stacked(mnist_root, size=500, seed=1),
    )
    assert dm.data_shape == (3, 8, 8) and dm.stored.shape == (500, 3, 8, 8) and dm.stored.dtype == torch.uint8
    assert torch.equal(dm.stored, same.stored) and not torch.equal(dm.stored, other.stored)
    assert dm.protocol() == {
        "dataset": "stacked_mnist",
        "split": "test",
        "shape": [3, 8, 8],
        "size": 500,
        "image_size": 8,
    }
    batches = iter(dm.train_dataloader())
    first_five = [next(batches) for _ in range(5)]
    resumed = GlobalBatchStream(dm.stored, 64, dm.seed, start=3, decode=dm.decode)
    assert torch.equal(next(iter(resumed)), first_five[3])
    assert first_five[0].min() >= -1 and first_five[0].max() <= 1
    # a row's label is its mode: each channel's image is a digit image of the label's digit there
    digit_images = _stacked(mnist_root).digits
    labels_of = {}
    for image, label in zip(digit_images.stored[:, 0], digit_images.stored_labels.tolist(), strict=True):
        labels_of.setdefault(image.numpy().tobytes(), set()).add(label)
    assert dm.num_classes == 1000 and dm.stored_labels.shape == (500,)
    for row, mode in zip(dm.stored, dm.stored_labels.tolist(), strict=True):
        for channel, digit in enumerate((mode // 100, mode // 10 % 10, mode % 10)):
            assert digit in labels_of[row[channel].numpy().tobytes()]


def test_missing_mnist_files_and_a_bad_size_are_one_line_errors(tmp_path):
    dm = StackedMNISTDataModule(root=str(tmp_path), split="train", download=False)
    with pytest.raises(MissingDataError, match=r"^mnist \(train split\) not found .*train-images-idx3-ubyte.gz"):
        dm.setup()
    with pytest.raises(ValueError, match=r"^data.size=0 is invalid; allowed: an integer >= 1$"):
        StackedMNISTDataModule(size=0)


def test_callback_and_gan_lab_evaluate_report_the_modes_of_the_generated_samples(mnist_root, classifier, tmp_path):
    torch.manual_seed(0)
    dm = _stacked(mnist_root, size=2000, batch_size=32)
    nets = {"generator": {"arch": "dcgan", "width": 8}, "critic": {"arch": "dcgan", "width": 8, "pack": 2}}
    model = AdversarialModule(loss="non_saturating", data_shape=(3, 8, 8), z_dim=8, ema_decay=0.5, **nets)
    settings = {"metrics": ["modes"], "mode_samples": 300, "mode_classifier_path": str(classifier)}
    callback = GenerativeMetrics(every_n_steps=2, batch_size=100, **settings)
    trainer = bare_trainer(2, [callback], default_root_dir=tmp_path)
    trainer.fit(model, dm)
    ckpt = tmp_path / "model.ckpt"
    trainer.save_checkpoint(ckpt)

    samples = to_uint8_images(generated_samples(model, 300, 100, 0))
    by_hand = stacked_mode_metrics(*ChannelDigits(classifier).read(samples))
    assert callback.last_results == by_hand
    assert callback.protocol["metrics"] == ["modes"] and callback.protocol["num_modes"] == 1000
    assert callback.protocol["mode_samples"] == 300 and callback.protocol["mode_classifier"].startswith(
        "digits.pt:weights-sha256="
    )
    assert "extractor" not in callback.protocol  # no feature metric asked for: no Inception needed
    best = torch.load(tmp_path / "checkpoints" / "best_reverse_kl.ckpt", weights_only=False)  # modes alone: best KL
    assert callback.best == by_hand["reverse_kl"] and best["global_step"] == callback.best_step == 2

    out = tmp_path / "eval.json"
    args = ["--ckpt_path", str(ckpt), "--metrics", "modes", "--mode_samples", "300", "--batch_size", "100"]
    assert evaluate.main([*args, "--mode_classifier_path", str(classifier), "--json", str(out)]) == 0
    payload = json.loads(out.read_text())
    assert {k: payload[k] for k in by_hand} == by_hand
    fresh = stacked_mode_metrics(
        *ChannelDigits(classifier).read(to_uint8_images(generated_samples(load_module(ckpt), 300, 100, 0)))
    )
    assert fresh == by_hand


def test_evaluate_real_reads_draws_of_the_stacked_set_as_all_modes_at_the_sampling_floor(
    mnist_root, classifier, tmp_path, capsys
):
    """--real scores 20,000 draws (with replacement) of a 20,000-image stacked set: every mode, and a
    KL of two layers of multinomial noise (the set's, the draws'), each about (1000 - 1) / (2 x 20000)."""
    n = 20_000  # a mode's draws are Poisson(Poisson(20)): none with probability exp(-20 (1 - 1/e)) ~ 3e-6
    model = AdversarialModule(data_shape=(3, 8, 8), z_dim=8, generator={"arch": "dcgan", "width": 8})
    trainer = bare_trainer(1, default_root_dir=tmp_path)
    dm = _stacked(mnist_root, size=n, batch_size=32)
    trainer.fit(model, dm)
    trainer.save_checkpoint(tmp_path / "model.ckpt")
    out = tmp_path / "real.json"
    args = ["--ckpt_path", str(tmp_path / "model.ckpt"), "--metrics", "modes", "--mode_samples", str(n)]
    args += ["--batch_size", "1000", "--real", "--mode_classifier_path", str(classifier)]
    assert evaluate.main([*args, "--json", str(out)]) == 0
    real = json.loads(out.read_text())
    floor = (1000 - 1) / (2 * n)
    assert real["modes"] == 1000
    assert floor < real["reverse_kl"] < 3 * floor
    assert capsys.readouterr().out.startswith(f"{n} real draws (stacked_mnist test split)\n")
    _, confidence = ChannelDigits(classifier).read(dm.reference[:4000])  # the classifier on the set itself
    assert real["digit_confidence"] == pytest.approx(float(confidence.mean()), abs=0.006)  # sds ~0.002, ~0.001


def test_modes_on_other_image_data_and_a_missing_classifier_are_one_line_errors(tmp_path, monkeypatch, mnist_root):
    evaluator = ImageEvaluator(MetricSettings(metrics=["modes"]))
    with pytest.raises(ValueError, match=r"^metrics.metrics=\['modes'\] has nothing to compute for digits data; "):
        evaluator.protocol(DIGITS)
    monkeypatch.setenv("GAN_LAB_CACHE", str(tmp_path))
    with pytest.raises(
        FileNotFoundError, match=r"mnist-classifier weights not found .*gan-lab train-evaluator --dataset mnist"
    ):
        evaluator.protocol(_stacked(mnist_root, size=10))
