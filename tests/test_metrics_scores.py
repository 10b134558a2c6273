"""Metric math against closed forms, independent implementations and analytic cases."""

from __future__ import annotations

import math
import sys
from pathlib import Path

import numpy as np
import pytest
import scipy.linalg
import torch

from gan_modules.metrics import exact_emd, mode_metrics, scores

sys.path.insert(0, str(Path(__file__).parent / "scripts_metrics"))
import extractor_fixtures


def _gaussian(n, mean, cov, seed):
    rng = np.random.default_rng(seed)
    return torch.from_numpy(rng.multivariate_normal(mean, cov, size=n)).float()


def _frechet_scipy(x: np.ndarray, y: np.ndarray) -> float:
    """Heusel et al. 2017, Eq. (6), with scipy's matrix square root."""
    mu1, mu2 = x.mean(0), y.mean(0)
    s1, s2 = np.cov(x, rowvar=False), np.cov(y, rowvar=False)
    covmean = scipy.linalg.sqrtm(s1 @ s2).real
    return float(((mu1 - mu2) ** 2).sum() + np.trace(s1 + s2 - 2 * covmean))


def test_fid_equals_closed_form_frechet_distance_with_scipy_sqrtm():
    d = 6
    a = np.random.default_rng(0).normal(size=(d, d))
    x = _gaussian(4000, np.zeros(d), a @ a.T / d + np.eye(d), 1)
    y = _gaussian(3000, np.linspace(-1, 1, d), np.diag(np.linspace(0.5, 2, d)), 2)
    ours = scores.fid(x, y)
    assert ours == pytest.approx(_frechet_scipy(x.numpy().astype(np.float64), y.numpy().astype(np.float64)), rel=1e-4)
    assert ours > 1.0


def test_fid_of_a_set_with_itself_is_zero_and_a_shift_adds_its_squared_norm():
    x = _gaussian(2000, np.zeros(4), np.eye(4), 3)
    assert abs(scores.fid(x, x)) < 1e-4
    values = []
    for size in (0.5, 1.0, 2.0):
        t = torch.full((4,), size)
        values.append(scores.fid(x + t, x))
        # same covariance, means differ by t: FID = |t|^2 exactly
        assert values[-1] == pytest.approx(float((t**2).sum()), rel=1e-3)
    assert values == sorted(values)


def test_fid_equals_torchmetrics_frechet_distance_with_the_same_feature_network():
    from torchmetrics.image.fid import FrechetInceptionDistance

    extractor_fixtures.register()
    net = extractor_fixtures.TinyCNN("t", ["features"])
    gen = torch.Generator().manual_seed(0)
    real = torch.randint(0, 256, (300, 3, 8, 8), generator=gen, dtype=torch.uint8)
    fake = (real.float() * 0.7 + 40).round().clamp(0, 255).to(torch.uint8)

    class Features(torch.nn.Module):
        def forward(self, x):
            return net(x)[0]

    metric = FrechetInceptionDistance(feature=Features())
    metric.update(real, real=True)
    metric.update(fake, real=False)
    reference = float(metric.compute())
    assert scores.fid(net(fake)[0], net(real)[0]) == pytest.approx(reference, rel=1e-4)


def test_inception_score_of_uniform_predictions_is_one_and_of_confident_balanced_ones_is_k():
    assert scores.inception_score(torch.zeros(500, 10))[0] == pytest.approx(1.0, abs=1e-9)
    k = 5
    confident = torch.nn.functional.one_hot(torch.arange(500) % k, 10).float() * 100.0
    mean, std = scores.inception_score(confident, splits=1)
    assert mean == pytest.approx(k, rel=1e-9) and std == 0.0
    # one class only: p(y|x) = p(y), KL = 0
    one_class = torch.zeros(500, 10).index_fill_(1, torch.tensor([3]), 100.0)
    assert scores.inception_score(one_class)[0] == pytest.approx(1.0)


def _mmd2_unbiased_poly(x: np.ndarray, y: np.ndarray) -> float:
    """Binkowski et al. 2018, Eq. (2)/(3): unbiased MMD^2, kernel k(a, b) = (a.b / d + 1)^3."""
    d, m = x.shape[1], len(x)
    k = lambda a, b: (a @ b.T / d + 1) ** 3  # noqa: E731
    kxx, kyy, kxy = k(x, x), k(y, y), k(x, y)
    off = lambda mat: (mat.sum() - np.trace(mat)) / (m * (m - 1))  # noqa: E731
    return float(off(kxx) + off(kyy) - 2 * kxy.mean())


def test_kid_with_one_full_subset_equals_the_unbiased_mmd_formula():
    x = _gaussian(200, np.zeros(5), np.eye(5), 4)
    y = _gaussian(200, np.full(5, 0.3), np.eye(5) * 1.5, 5)
    mean, std = scores.kid(x, y, subsets=1, subset_size=200)  # a subset of all rows = all rows
    assert mean == pytest.approx(_mmd2_unbiased_poly(x.double().numpy(), y.double().numpy()), rel=1e-4)
    assert std == 0.0
    same, _ = scores.kid(x, _gaussian(200, np.zeros(5), np.eye(5), 6), subsets=20, subset_size=100)
    assert abs(same) < mean / 5  # same distribution: unbiased estimate near 0


def test_kid_refuses_a_subset_larger_than_the_samples_with_a_clear_error():
    x = torch.randn(50, 3)
    with pytest.raises(ValueError, match=r"kid_subset_size=1000 is invalid for 50 generated and 50 real"):
        scores.kid(x, x, subset_size=1000)


def test_precision_recall_equals_a_brute_force_knn_manifold_check():
    gen = torch.Generator().manual_seed(0)
    real = torch.randn(150, 4, generator=gen)
    fake = torch.randn(120, 4, generator=gen) * 1.5 + 0.7

    def inside(points, manifold, k=3):  # Kynkaanniemi et al. 2019, Eq. (1)-(2)
        radii = torch.cdist(manifold, manifold).sort(1).values[:, k]  # k-th neighbour, self excluded
        return (torch.cdist(points, manifold) <= radii[None]).any(1).float().mean().item()

    precision, recall = scores.precision_recall(fake, real)
    assert precision == pytest.approx(inside(fake, real)) and recall == pytest.approx(inside(real, fake))
    assert 0 < precision < 1 and 0 < recall < 1


def test_fakes_on_half_the_real_manifold_have_precision_one_and_recall_one_half():
    """Real data: two far-apart clusters; fakes: the first cluster's points. Every fake is a real point
    (precision exactly 1), and only the first cluster's reals lie in the fake manifold (recall exactly
    1/2): the case that tells the two apart, swapped in torch-fidelity before 0.4.0 (issues #58, #70)."""
    gen = torch.Generator().manual_seed(0)
    a, b = torch.randn(200, 4, generator=gen), torch.randn(200, 4, generator=gen) + 50.0
    precision, recall = scores.precision_recall(a.clone(), torch.cat([a, b]))
    assert (precision, recall) == (1.0, 0.5)


def test_class_coverage_analytic_cases():
    big = 50.0  # one-hot logits scaled up: softmax ~ one-hot, confidence ~ 1
    balanced = big * torch.nn.functional.one_hot(torch.arange(100) % 10, 10).float()
    assert scores.class_coverage(balanced) == {
        "classes_covered": 10.0,
        "class_kl": pytest.approx(0.0, abs=1e-12),
        "confidence": pytest.approx(1.0),
    }
    one = big * torch.nn.functional.one_hot(torch.full((40,), 7), 10).float()
    assert scores.class_coverage(one) == {
        "classes_covered": 1.0,
        "class_kl": pytest.approx(math.log(10)),
        "confidence": pytest.approx(1.0),
    }
    two = big * torch.nn.functional.one_hot(torch.arange(40) % 2, 10).float()
    assert scores.class_coverage(two) == {
        "classes_covered": 2.0,
        "class_kl": pytest.approx(math.log(5)),
        "confidence": pytest.approx(1.0),
    }


def test_class_confidence_is_the_mean_top_softmax_probability():
    # a logit of log 9 against nine zeros gives the top class 9 / (9 + 9) = 1/2; uniform logits 1/10
    half = torch.zeros(30, 10)
    half[:, 3] = math.log(9.0)
    assert scores.class_coverage(half)["confidence"] == pytest.approx(0.5)
    mixed = torch.cat([half, torch.zeros(30, 10)])
    assert scores.class_coverage(mixed)["confidence"] == pytest.approx((0.5 + 0.1) / 2)


def test_mode_metrics_analytic_cases():
    modes = torch.tensor([[1.0, 0.0], [0.0, 1.0], [-1.0, 0.0], [0.0, -1.0]])
    on_modes = modes.repeat(25, 1)
    assert mode_metrics(on_modes, modes, 0.01) == {"modes": 4.0, "hq_pct": 100.0, "reverse_kl": pytest.approx(0.0)}
    collapsed = modes[:1].repeat(100, 1)
    out = mode_metrics(collapsed, modes, 0.01)
    assert out["modes"] == 1.0 and out["reverse_kl"] == pytest.approx(math.log(4))
    half_far = torch.cat([on_modes[:50], torch.zeros(50, 2)])  # origin: 1.0 from every mode, > 3 std
    assert mode_metrics(half_far, modes, 0.01)["hq_pct"] == pytest.approx(50.0)


def test_exact_emd_of_a_translated_cloud_is_the_translation_length():
    cloud = torch.randn(200, 2, generator=torch.Generator().manual_seed(0))
    t = torch.tensor([0.3, -0.4])
    assert exact_emd(cloud, cloud + t) == pytest.approx(0.5, rel=1e-6)  # float32 rounding of the shift
    assert exact_emd(cloud, cloud) == pytest.approx(0.0, abs=1e-12)
