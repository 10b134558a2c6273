"""Self-conditioned GANs (Liu et al. 2020): the clusters against known partitions and a brute-force
matching, their label prior against its sizes, real fits (clusters of ring8's components, reclustering
on schedule, exact resume) and the refusals."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch
from conftest import fit_yaml
from torch import nn

from datamodules import Toy2DDataModule
from gan_modules import AdversarialModule
from gan_modules.cli import main
from gan_modules.engine import CLUSTER_LABEL_SEED_OFFSET
from gan_modules.self_conditioning import ClusterLabels
from gan_modules.trainers import bare_trainer

SN_HINGE = {"loss": "hinge", "regularizers": None, "constraint": "spectral_norm"}


class LinearFeatures(nn.Module):
    """A stand-in critic whose penultimate features are x A + b."""

    def __init__(self, a: torch.Tensor, b: torch.Tensor) -> None:
        super().__init__()
        self.register_buffer("a", a)
        self.register_buffer("b", b)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        return x @ self.a + self.b


def _blobs(sizes: list[int], seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Points around the corners of a square (side 10, std 0.1), `sizes[i]` of them at corner i."""
    gen = torch.Generator().manual_seed(seed)
    corners = torch.tensor([[0.0, 0.0], [10.0, 0.0], [0.0, 10.0], [10.0, 10.0]])
    truth = torch.cat([torch.full((n,), i) for i, n in enumerate(sizes)])
    return corners[truth] + 0.1 * torch.randn(len(truth), 2, generator=gen), truth


def _identity() -> LinearFeatures:
    return LinearFeatures(torch.eye(2), torch.zeros(2))


def test_clusters_of_separated_blobs_are_the_blobs_and_a_label_is_the_nearest_centre():
    points, truth = _blobs([10, 20, 30, 40])
    clusters = ClusterLabels(4, len(points), _identity(), feature_dim=2)
    assert not clusters.fitted
    clusters.fit(_identity(), points, seed=0)
    assert clusters.fitted
    # each cluster is one blob: the contingency table is a permutation matrix
    table = torch.zeros(4, 4)
    table.index_put_((clusters.assigned, truth), torch.ones(len(truth)), accumulate=True)
    assert ((table > 0).sum(0) == 1).all() and ((table > 0).sum(1) == 1).all()
    assert sorted(clusters.sizes.tolist()) == [10, 20, 30, 40]
    for k in range(4):  # the centre is its blob's mean
        torch.testing.assert_close(clusters.centers[k], points[clusters.assigned == k].mean(0), rtol=0, atol=1e-5)
    # a new point's label is the centre nearest to it, by brute force
    queries = torch.tensor([[1.0, 1.0], [9.0, 2.0], [3.0, 8.0], [6.0, 7.0]])
    distances = ((queries[:, None, :] - clusters.centers[None]) ** 2).sum(-1)
    assert torch.equal(clusters(queries), distances.argmin(1))
    assert torch.equal(clusters(points), clusters.assigned)


def test_matching_names_each_new_cluster_after_the_old_one_it_overlaps_most():
    """Against a brute force over all 4! namings: a relabelled partition with 10% of its points moved."""
    rng = np.random.default_rng(0)
    old = rng.integers(0, 4, 400)
    permutation = np.array([2, 0, 3, 1])
    new = permutation[old]
    moved = rng.random(400) < 0.1
    new[moved] = rng.integers(0, 4, int(moved.sum()))
    names = ClusterLabels(4, 400, _identity(), feature_dim=2)._match(new, old)
    best = max(itertools.permutations(range(4)), key=lambda p: (np.array(p)[new] == old).sum())
    assert names.tolist() == list(best)
    assert names[permutation].tolist() == [0, 1, 2, 3]


def test_reclustering_in_moved_features_keeps_every_cluster_its_name_and_its_points():
    """The critic's features rotate and shift between two clusterings: the same partition comes back
    under the same names, with the centres moved along."""
    points, _ = _blobs([25, 25, 25, 25], seed=1)
    clusters = ClusterLabels(4, len(points), _identity(), feature_dim=2)
    clusters.fit(_identity(), points, seed=0)
    before, centers = clusters.assigned.clone(), clusters.centers.clone()
    angle = torch.tensor(0.7)
    rotation = torch.stack([torch.stack([angle.cos(), -angle.sin()]), torch.stack([angle.sin(), angle.cos()])])
    moved = LinearFeatures(rotation, torch.tensor([3.0, -2.0]))
    clusters.fit(moved, points, seed=1)
    assert torch.equal(clusters.assigned, before)
    torch.testing.assert_close(clusters.centers, centers @ rotation + torch.tensor([3.0, -2.0]), rtol=0, atol=1e-4)
    assert torch.equal(clusters(points), before)  # labels now read the moved critic's features


def test_drawn_labels_follow_the_cluster_sizes():
    clusters = ClusterLabels(3, 4, _identity(), feature_dim=2)
    clusters.assigned.copy_(torch.tensor([2, 0, 2, 2]))  # sizes 1, 0, 3
    labels = clusters.draw(40_000, torch.Generator().manual_seed(0))
    share = torch.bincount(labels, minlength=3) / 40_000
    assert share[1] == 0  # an empty cluster is never asked for
    assert share[0].item() == pytest.approx(0.25, abs=4 * (0.25 * 0.75 / 40_000) ** 0.5)


def _ring8_module(**overrides) -> AdversarialModule:
    torch.manual_seed(0)
    nets = {"generator": {"arch": "mlp", "hidden": [32, 32]}, "critic": {"arch": "mlp", "hidden": [32, 32]}}
    spec = {"clusters": 8, "images": 2000, "every": 3}
    return AdversarialModule(**SN_HINGE, **nets, z_dim=2, self_conditioning=spec, ema_decay=0.5, **overrides)


def test_a_self_conditioned_fit_clusters_ring8_into_its_components_and_reclusters_on_schedule(monkeypatch):
    """The critic's features of ring8's 8 tight components form 8 clusters, one per component (the
    data's own labels, which the model never reads); clustering runs before any callback samples and
    then every 3 generator iterations; the generator's labels are drawn from the clusters' sizes."""
    module = _ring8_module()
    assert module.num_classes == 0 and module.net_classes == 8  # unconditional to everything outside
    steps: list[int] = []
    recluster = module.recluster
    monkeypatch.setattr(module, "recluster", lambda: (steps.append(module.global_step), recluster())[1])
    generated: list[torch.Tensor] = []
    module.generator.register_forward_pre_hook(lambda net, args: generated.append(args[1].clone()))
    real_labels: list[torch.Tensor] = []
    module.clusters.register_forward_hook(lambda net, args, out: real_labels.append(out.clone()))
    dm = Toy2DDataModule("ring8", size=2000, batch_size=64)
    bare_trainer(6).fit(module, dm)
    assert steps == [0, 3, 6]
    components = dm.stored_labels
    table = torch.zeros(8, 8)
    table.index_put_((module.clusters.assigned, components), torch.ones(len(components)), accumulate=True)
    assert ((table > 0).sum(0) == 1).all() and ((table > 0).sum(1) == 1).all()  # clusters = components
    # critic steps generate at the real batch's clusters, generator steps at drawn ones
    assert len(generated) == 12 and len(real_labels) == 6
    for fake, real in zip(generated[0::2], real_labels, strict=True):
        assert torch.equal(fake, real)
    drawn = torch.cat(generated[1::2])
    assert drawn.min() >= 0 and drawn.max() < 8 and len(drawn.unique()) > 4
    assert torch.equal(module.clusters(dm.decode(dm.stored)), module.clusters.assigned)
    # sampling: the seeded noise at labels drawn from the sizes with their own seed, through the EMA
    gen = torch.Generator().manual_seed(5 + CLUSTER_LABEL_SEED_OFFSET)
    labels = torch.multinomial(module.clusters.sizes, 10, replacement=True, generator=gen)
    z = module.seeded_noise(10, 5)
    torch.testing.assert_close(module.sample(10, seed=5), module.generator_ema.eval()(z, labels))


def test_a_resumed_self_conditioned_fit_ends_with_the_uninterrupted_state(tmp_path, capsys):
    """6 iterations straight, or 2, stop, and resume to 6: the clusters, the frozen critic they read
    and every weight agree exactly (a resumed fit keeps its clusters, and reclusters at 3 and 6)."""
    spec = {"clusters": 4, "images": 256, "every": 3}

    def fit(root: str, steps: int) -> dict[str, torch.Tensor]:
        config = fit_yaml(
            tmp_path / f"{root}{steps}.yaml",
            model={"init_args": {"self_conditioning": spec}},
            trainer={"max_steps": steps},
        )
        assert main(["fit", "--config", str(config), "--trainer.default_root_dir", str(tmp_path / root)]) == 0
        return torch.load(tmp_path / root / "checkpoints" / "last.ckpt", weights_only=False)["state_dict"]

    straight, stopped = fit("straight", 6), fit("resumed", 2)
    capsys.readouterr()
    resumed = fit("resumed", 6)
    assert "resuming from" in capsys.readouterr().out
    assert straight.keys() == resumed.keys() and "clusters.centers" in straight
    assert not torch.equal(stopped["clusters.centers"], straight["clusters.centers"])  # reclustered at 3
    for name, value in straight.items():
        assert torch.equal(resumed[name], value), name


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (
            {"self_conditioning": {"clusters": 8}},
            "model.self_conditioning={'clusters': 8} is invalid; allowed: null or {clusters: k >= 2, images: n >= k,",
        ),
        (
            {"self_conditioning": {"clusters": 1, "images": 10, "every": 5}},
            "model.self_conditioning.clusters=1 is invalid; allowed: an integer >= 2",
        ),
        (
            {"self_conditioning": {"clusters": 8, "images": 4, "every": 5}},
            "model.self_conditioning.images=4 is invalid; allowed: an integer >= clusters (8)",
        ),
        (
            {"self_conditioning": {"clusters": 8, "images": 64, "every": 0}},
            "model.self_conditioning.every=0 is invalid; allowed: an integer >= 1",
        ),
        (
            {"self_conditioning": {"clusters": 8, "images": 600, "every": 5}},
            "model.self_conditioning.images=600 is invalid; allowed: an integer <= 512, the rows of data 'ring8'",
        ),
        (
            {"self_conditioning": {"clusters": 8, "images": 64, "every": 5}, "num_classes": 8},
            "model.num_classes=8 is invalid; allowed: 0 with model.self_conditioning (the clusters are the classes)",
        ),
        (
            {"self_conditioning": {"clusters": 8, "images": 64, "every": 5}, "critic": {"arch": "mlp", "pack": 2}},
            "model.critic.pack=2 is invalid; allowed: 1 with model.self_conditioning",
        ),
    ],
)
def test_self_conditioning_settings_that_cannot_work_are_refused_in_one_line(tmp_path, capsys, overrides, message):
    config = fit_yaml(tmp_path / "fit.yaml", model={"init_args": overrides})
    assert main(["fit", "--config", str(config), "--trainer.default_root_dir", str(tmp_path / "run")]) == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and message in lines[0], lines
    assert not (tmp_path / "run" / "checkpoints").exists()
