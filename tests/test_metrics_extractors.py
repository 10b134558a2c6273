"""Feature extractors: Inception wiring and its resize, offline errors, autocast guard, digit classifier."""

from __future__ import annotations

import math
import sys
from pathlib import Path

import pytest
import torch
from torch_fidelity.utils import create_feature_extractor

from datamodules import DigitsDataModule
from gan_modules.commands import train_evaluator
from gan_modules.metrics import scores
from gan_modules.metrics.classifier import (
    classifier_fingerprint,
    default_classifier_path,
    load_classifier,
    save_classifier,
    train_classifier,
)
from gan_modules.metrics.extractors import INCEPTION_FILE, FeatureExtractor, MissingWeightsError

sys.path.insert(0, str(Path(__file__).parent / "scripts_metrics"))
import extractor_fixtures


@pytest.fixture(scope="module")
def random_inception(tmp_path_factory) -> Path:
    return extractor_fixtures.random_inception_weights(tmp_path_factory.mktemp("inception"))


def _digits(n: int, size: int = 8) -> torch.Tensor:
    return DigitsDataModule(image_size=size).stored[:n]


def test_offline_inception_fails_with_one_line_naming_the_file_and_the_option(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))  # an empty hub cache: the download must be tried and fail
    with pytest.raises(MissingWeightsError) as info:
        FeatureExtractor("inception")
    message = str(info.value)
    assert "\n" not in message
    assert INCEPTION_FILE in message and str(tmp_path / "hub" / "checkpoints") in message and "weights_path" in message
    assert info.value.__cause__ is None and info.value.__suppress_context__  # no urllib traceback chained


def test_missing_weights_path_names_the_path(tmp_path):
    with pytest.raises(MissingWeightsError, match=r"weights_path='.*nope\.pth' does not exist"):
        FeatureExtractor("inception", weights_path=str(tmp_path / "nope.pth"))


def test_unknown_extractor_is_a_one_line_error():
    with pytest.raises(ValueError, match=r"extractor='vgg' is unknown; allowed: .*inception"):
        FeatureExtractor("vgg")


def test_inception_features_equal_torch_fidelity_and_differ_from_torchmetrics_antialias_resize(random_inception):
    from torchmetrics.image.fid import NoTrainInceptionV3

    gray = _digits(2, size=16)  # 1 channel: repeated to RGB as torch-fidelity needs
    ours = FeatureExtractor("inception", weights_path=str(random_inception))
    features = ours(gray)
    assert set(features) == {"2048", "logits_unbiased"} and features["2048"].shape == (2, 2048)
    assert ours.fingerprint.startswith(INCEPTION_FILE + ":sha256=")

    fidelity = create_feature_extractor(
        "inception-v3-compat", ["2048"], cuda=False, verbose=False, feature_extractor_weights_path=str(random_inception)
    )
    rgb = gray.repeat(1, 3, 1, 1)
    reference = fidelity(rgb)[0]
    assert torch.equal(features["2048"], reference)

    # torchmetrics' default resize (antialias=True) is not the TF-compatible one of the FID protocol
    antialiased = NoTrainInceptionV3("inception-v3-compat", ["2048"], str(random_inception), antialias=True)(rgb)[0]
    rel = (antialiased - reference).norm() / reference.norm()
    assert rel > 1e-3, f"resize methods should differ, relative difference {rel:.2e}"


def test_extractor_runs_in_float32_inside_a_bf16_autocast_region():
    name = extractor_fixtures.register()
    extractor = FeatureExtractor(name)
    images = _digits(16).repeat(1, 3, 1, 1)
    plain = extractor(images)["features"]
    with torch.autocast("cpu", dtype=torch.bfloat16):
        guarded = extractor(images)["features"]
        unguarded = extractor.net(images)[0]
    assert torch.equal(guarded, plain) and guarded.dtype == torch.float32
    assert not torch.allclose(unguarded.float(), plain, rtol=1e-4, atol=1e-5)  # what the guard prevents


def test_grayscale_only_extractor_rejects_rgb_data(trained_digits_classifier):
    extractor = FeatureExtractor("digits-classifier", weights_path=str(trained_digits_classifier))
    with pytest.raises(ValueError, match=r"takes 1-channel images; the data has 3"):
        extractor(torch.zeros(2, 3, 8, 8, dtype=torch.uint8))


def test_missing_mnist_classifier_says_how_to_make_it(tmp_path, monkeypatch):
    monkeypatch.setenv("GAN_LAB_CACHE", str(tmp_path))
    with pytest.raises(MissingWeightsError, match=r"gan-lab train-evaluator --dataset mnist"):
        FeatureExtractor("mnist-classifier")


@pytest.mark.slow
def test_the_bundled_digits_classifier_is_trained_on_first_use(tmp_path, monkeypatch):
    """The digits ship with scikit-learn, so a missing classifier is trained (and cached) instead of
    failing; it then classifies the real digits it was trained on as well as `gan-lab train-evaluator`'s."""
    monkeypatch.setenv("GAN_LAB_CACHE", str(tmp_path))
    FeatureExtractor("digits-classifier")
    saved = torch.load(tmp_path / "evaluators" / "digits-classifier.pt", weights_only=False)
    assert saved["heldout_accuracy"] > 0.95


@pytest.fixture(scope="module")
def trained_digits_classifier(tmp_path_factory) -> Path:
    """`gan-lab train-evaluator --dataset digits` into a private cache (default output path)."""
    cache = tmp_path_factory.mktemp("gan_lab_cache")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("GAN_LAB_CACHE", str(cache))
        assert train_evaluator.main(["--dataset", "digits", "--epochs", "4"]) == 0
        return default_classifier_path("digits")


def test_trained_digit_classifier_is_accurate_and_measures_class_coverage(trained_digits_classifier, monkeypatch):
    _, meta = load_classifier(trained_digits_classifier)
    assert meta["heldout_accuracy"] > 0.9 and meta["num_heldout"] == 270 and meta["dataset"] == "digits"

    monkeypatch.setenv("GAN_LAB_CACHE", str(trained_digits_classifier.parent.parent))
    extractor = FeatureExtractor("digits-classifier")  # found at the default cache path
    dm = DigitsDataModule(image_size=16)  # a GAN at 16 px: real digits upsampled, as the datamodule serves them
    labels = dm.labels()
    logits = extractor(dm.stored)["logits"]
    assert (logits.argmax(1) == labels).float().mean() > 0.9
    coverage = scores.class_coverage(logits)
    assert coverage["classes_covered"] == 10 and coverage["class_kl"] < 0.01
    noise = scores.class_coverage(extractor(torch.randint_like(dm.stored[:200], 0, 256))["logits"])
    assert coverage["confidence"] > 0.8 and noise["confidence"] < 0.5, (coverage, noise)  # noise: no digit
    zeros_only = scores.class_coverage(extractor(dm.stored[labels == 0])["logits"])
    # one digit only: a few misclassified samples may add classes, but the histogram stays near one-hot
    assert zeros_only["classes_covered"] < 10 and zeros_only["class_kl"] > 0.85 * math.log(10)


def test_classifier_training_does_not_depend_on_the_thread_count_and_is_fingerprinted_by_its_weights(tmp_path):
    """The pin behind every classifier FID: the same seed gives bit-identical weights under 1 or 2
    threads, and two files holding them carry one fingerprint although torch.save's bytes differ."""
    dm = DigitsDataModule()
    images, labels = dm.stored[:400], torch.as_tensor(dm.labels()[:400]).long()
    paths, before = [], torch.get_num_threads()
    for threads in (2, 1):
        torch.set_num_threads(threads)
        net, stats = train_classifier(images, labels, epochs=1, heldout_fraction=0.25, seed=3)
        assert torch.get_num_threads() == threads  # restored after training
        paths.append(save_classifier(net, tmp_path / f"threads{threads}.pt", dataset="digits", **stats))
    torch.set_num_threads(before)
    (first, _), (second, _) = (load_classifier(p) for p in paths)
    for key, tensor in first.state_dict().items():
        assert torch.equal(tensor, second.state_dict()[key]), key
    assert paths[0].read_bytes() != paths[1].read_bytes()  # the archive names its file
    digest = classifier_fingerprint(paths[0]).split("=")[1]
    assert classifier_fingerprint(paths[1]).split("=")[1] == digest
    with torch.no_grad():
        next(first.parameters()).view(-1)[0] += 1e-6
    save_classifier(first, tmp_path / "nudged.pt", dataset="digits", **stats)
    assert classifier_fingerprint(tmp_path / "nudged.pt").split("=")[1] != digest
