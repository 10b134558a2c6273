"""Density/coverage against the formula on a hand-made case and against `prdc`; intra-FID per class."""

from __future__ import annotations

import math
import sys
from pathlib import Path

import numpy as np
import prdc
import pytest
import scipy.linalg
import torch

from datamodules import DigitsDataModule, to_uint8_images
from gan_modules import AdversarialModule
from gan_modules.metrics import scores
from gan_modules.metrics.collective import SingleProcess
from gan_modules.metrics.extractors import FeatureExtractor
from gan_modules.metrics.suite import ImageEvaluator, MetricSettings, generated_samples

sys.path.insert(0, str(Path(__file__).parent / "scripts_metrics"))
import extractor_fixtures

TINY_NETS = {"generator": {"arch": "dcgan", "width": 8}, "critic": {"arch": "dcgan", "width": 8}, "z_dim": 8}


def _on_a_line(xs: list[float]) -> torch.Tensor:
    return torch.tensor([[x, 0.0] for x in xs])


def test_density_and_coverage_of_a_hand_made_case():
    """Reals at 0..9 on a line. With k = 5 the k-NN radii are 5, 4, 3, 3, 3, 3, 3, 3, 4, 5 (the 5th nearest
    other real). A fake at 0.2 is inside the balls of reals 0..3 (distances 0.2, 0.8, 1.8, 2.8 < radii;
    real 4 is 3.8 >= 3), one at 9.3 inside those of reals 7..9 (0.3, 1.3, 2.3; real 6: 3.3 >= 3), and
    five far fakes in none. Density = (4 + 3) / (5 * 7) = 1/5; coverage = 7 of 10 balls hit = 0.7."""
    real = _on_a_line([float(i) for i in range(10)])
    fake = _on_a_line([0.2, 9.3, 100.0, 200.0, 300.0, 400.0, 500.0])
    density, coverage = scores.density_coverage(fake, real, neighborhood=5)
    assert density == pytest.approx(1 / 5, abs=1e-6) and coverage == pytest.approx(0.7, abs=1e-9)
    # the reals as fakes: every real ball holds its own centre (distance 0 < radius), so coverage is 1
    assert scores.density_coverage(real, real, neighborhood=5)[1] == 1.0


def test_density_and_coverage_equal_prdc_on_random_features():
    gen = np.random.default_rng(0)
    real = gen.normal(size=(300, 16)).astype(np.float32)
    fake = (gen.normal(size=(250, 16)) * 1.3 + 0.2).astype(np.float32)
    expected = prdc.compute_prdc(real_features=real, fake_features=fake, nearest_k=5)
    density, coverage = scores.density_coverage(torch.from_numpy(fake), torch.from_numpy(real))
    assert density == expected["density"] and coverage == expected["coverage"]
    assert 0 < coverage < 1 and density > 0


def test_a_neighbourhood_as_large_as_a_sample_set_is_a_one_line_error():
    with pytest.raises(ValueError, match=r"^dc_neighborhood=5 is invalid for 6 generated and 9 real samples; "):
        scores.density_coverage(torch.zeros(6, 2), torch.zeros(9, 2))


def _frechet_scipy(x: np.ndarray, y: np.ndarray) -> float:
    """Heusel et al. 2017, Eq. (6), with scipy's matrix square root."""
    s1, s2 = np.cov(x, rowvar=False), np.cov(y, rowvar=False)
    covmean = scipy.linalg.sqrtm(s1 @ s2).real
    return float(((x.mean(0) - y.mean(0)) ** 2).sum() + np.trace(s1 + s2 - 2 * covmean))


def test_intra_fid_is_the_fid_of_each_class_and_their_mean():
    gen = torch.Generator().manual_seed(0)
    real, fake = torch.randn(600, 3, generator=gen), torch.randn(500, 3, generator=gen) * 1.5
    real_classes, fake_classes = torch.arange(600) % 3, torch.arange(500) % 3
    real[real_classes == 1] += 2.0
    out = scores.intra_fid(fake.double(), fake_classes, real.double(), real_classes, num_classes=3)
    by_hand = [
        _frechet_scipy(fake[fake_classes == k].double().numpy(), real[real_classes == k].double().numpy())
        for k in range(3)
    ]
    assert [out[f"intra_fid_{k}"] for k in range(3)] == pytest.approx(by_hand, rel=1e-4)
    assert out["intra_fid"] == pytest.approx(sum(by_hand) / 3, rel=1e-4)
    assert by_hand[1] > by_hand[0] + 3  # the shifted class is the far one
    missing = scores.intra_fid(fake, fake_classes, real, real_classes, num_classes=4)  # no sample of class 3
    assert math.isnan(missing["intra_fid_3"]) and math.isnan(missing["intra_fid"])


def test_the_evaluator_reports_density_and_coverage_of_its_own_features():
    name = extractor_fixtures.register()
    torch.manual_seed(0)
    model, dm = (
        AdversarialModule(loss="non_saturating", data_shape=(1, 8, 8), **TINY_NETS),
        DigitsDataModule(image_size=8, batch_size=32),
    )
    settings = MetricSettings(num_fake=90, num_real=120, extractor=name, metrics=["fid", "dc"], batch_size=40)
    evaluator = ImageEvaluator(settings)
    results = evaluator.evaluate(model, dm, SingleProcess())
    assert set(results) == {"fid", "density", "coverage"}
    extractor = FeatureExtractor(name)
    fake = extractor(extractor_fixtures.Images(generated_samples(model, 90, 40, seed=0)).images)["features"]
    real = extractor(extractor_fixtures.Images(dm.real_samples(120, seed=0)).images)["features"]
    expected = prdc.compute_prdc(real_features=real.numpy(), fake_features=fake.numpy(), nearest_k=5)
    assert results["density"] == pytest.approx(expected["density"], rel=1e-6)
    assert results["coverage"] == pytest.approx(expected["coverage"], rel=1e-6)
    assert evaluator.protocol(dm)["dc_neighborhood"] == 5


pytestmark = pytest.mark.xdist_group("metrics_density_intra")  # one worker builds the module fixtures, once


@pytest.fixture(scope="module")
def digits_classifier(tmp_path_factory) -> Path:
    return extractor_fixtures.digits_classifier(tmp_path_factory.mktemp("classifier"))


def intra_fid_settings(classifier: Path) -> MetricSettings:
    return MetricSettings(
        num_fake=400,
        num_real=1797,
        extractor="digits-classifier",
        weights_path=str(classifier),
        metrics=["fid", "intra_fid"],
        batch_size=200,
    )


def test_intra_fid_in_the_evaluator_classes_samples_by_the_classifiers_prediction(digits_classifier):
    torch.manual_seed(1)
    model, dm = (
        AdversarialModule(loss="non_saturating", data_shape=(1, 8, 8), **TINY_NETS),
        DigitsDataModule(image_size=8, batch_size=32),
    )
    settings = intra_fid_settings(digits_classifier)
    evaluator = ImageEvaluator(settings)
    results = evaluator.evaluate(model, dm, SingleProcess())
    extractor = FeatureExtractor("digits-classifier", weights_path=str(digits_classifier))
    fake = extractor(to_uint8_images(generated_samples(model, 400, 200, seed=0)))
    real = extractor(dm.stored)
    fake_classes, real_classes = fake["logits"].argmax(1), real["logits"].argmax(1)
    finite = 0
    for k in range(10):
        f, r = fake["features"][fake_classes == k], real["features"][real_classes == k]
        if min(len(f), len(r)) < 2:
            assert math.isnan(results[f"intra_fid_{k}"])
            continue
        finite += 1
        by_hand = _frechet_scipy(f.double().numpy(), r.double().numpy())
        assert results[f"intra_fid_{k}"] == pytest.approx(by_hand, rel=1e-3, abs=1e-3), k
    assert finite >= 1
    protocol = evaluator.protocol(dm)
    assert protocol["metrics"] == ["fid", "intra_fid"] and "predicted class" in protocol["intra_fid_classes"]
    # a feature extractor that is no classifier has no classes: intra-FID is skipped, and on record
    tiny = ImageEvaluator(MetricSettings(extractor=extractor_fixtures.register(), metrics=["fid", "intra_fid"]))
    assert tiny.protocol(dm)["metrics"] == ["fid"]


class RealDigitsOfTheClassAskedFor:
    """A stand-in conditional generator: for each requested label, a real digit of that class."""

    num_classes = 10

    def __init__(self, dm: DigitsDataModule) -> None:
        self.images, self.labels = dm.decode(dm.stored), dm.stored_labels

    def sample(self, n: int, seed: int, batch_size: int, labels: torch.Tensor) -> torch.Tensor:
        gen = torch.Generator().manual_seed(seed)
        picks = [
            torch.nonzero(self.labels == y)[torch.randint(0, int((self.labels == y).sum()), (1,), generator=gen)]
            for y in labels
        ]
        return self.images[torch.cat(picks).flatten()]


def test_class_accuracy_and_intra_fid_of_a_conditional_generator_use_the_class_asked_for(digits_classifier):
    dm = DigitsDataModule(image_size=8, batch_size=32)
    generator = RealDigitsOfTheClassAskedFor(dm)
    settings = intra_fid_settings(digits_classifier)
    evaluator = ImageEvaluator(settings)
    results = evaluator.evaluate(generator, dm, SingleProcess())
    asked = torch.arange(400) % 10  # sample i is of class i mod K
    extractor = FeatureExtractor("digits-classifier", weights_path=str(digits_classifier))
    fake = extractor(to_uint8_images(generated_samples(generator, 400, 200, seed=0)))
    real = extractor(dm.stored)
    hits = fake["logits"].argmax(1) == asked
    per_class = [hits[asked == k].double().mean().item() for k in range(10)]
    assert [results[f"class_accuracy_{k}"] for k in range(10)] == pytest.approx(per_class)
    assert results["class_accuracy"] == pytest.approx(sum(per_class) / 10)
    real_acc = (real["logits"].argmax(1) == dm.stored_labels).double().mean().item()
    assert abs(results["class_accuracy"] - real_acc) < 0.05  # real digits of the asked class: the classifier's accuracy
    real_classes = real["logits"].argmax(1)
    for k in (0, 7):  # grouped by the class asked for, not the classifier's guess
        by_hand = _frechet_scipy(
            fake["features"][asked == k].double().numpy(), real["features"][real_classes == k].double().numpy()
        )
        assert results[f"intra_fid_{k}"] == pytest.approx(by_hand, rel=1e-3, abs=1e-3)
    protocol = evaluator.protocol(dm, generator)
    assert "the class asked for" in protocol["intra_fid_classes"] and "i mod K" in protocol["class_accuracy_labels"]
