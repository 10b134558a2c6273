"""Self-conditioned GAN's pseudo-labels (Liu et al. 2020, "Diverse Image Generation via
Self-Conditioned GANs", Sec. 3): the classes of a conditional GAN come from k-means clustering of the
critic's penultimate features of a fixed set of real images, so an unlabelled data set trains a
conditional generator whose label prior is the clusters' sizes.

`ClusterLabels` holds what the labels depend on, all in the checkpoint (buffers and a frozen copy of
the critic): a real image's label is its nearest centre in the features of the critic as it was at
the last clustering (the authors' clusterer keeps such a copy), so labels and centres stay in one
feature space between reclusterings. Reclustering starts k-means from the means of the old clusters
in the new features and then renames the new clusters to the old ones they overlap most (the
Hungarian matching of their `clusterers/selfcondgan.py`), so the generator's classes keep their
meaning. k-means and the matching are scikit-learn's and SciPy's.
"""

from __future__ import annotations

import copy

import numpy as np
import torch
from scipy.optimize import linear_sum_assignment
from sklearn.cluster import KMeans
from torch import Tensor, nn

KMEANS_RESTARTS = 10  # k-means++ restarts of the first clustering (the authors' `kmeans_fit_predict`: n_init=10)
FEATURE_BATCH = 1000  # images per critic pass when clustering (memory only)
# k-means runs to its fixed point (tol 0, where the authors keep scikit-learn's 1e-4: until no point
# changes cluster, or 300 iterations), so each centre is the mean of its cluster


class ClusterLabels(nn.Module):
    """k clusters of the critic's features of `images` real images: labels for real batches
    (`forward`), a label prior for the generator (`draw`) and `fit` to recluster."""

    def __init__(self, clusters: int, images: int, critic: nn.Module, feature_dim: int) -> None:
        super().__init__()
        self.clusters = clusters
        self.critic = self._frozen(critic)
        self.register_buffer("centers", torch.zeros(clusters, feature_dim))
        self.register_buffer("assigned", torch.full((images,), -1, dtype=torch.long))  # -1: not clustered yet

    @staticmethod
    def _frozen(critic: nn.Module) -> nn.Module:
        return copy.deepcopy(critic).requires_grad_(False).eval()

    @property
    def sizes(self) -> Tensor:
        """Images per cluster: the label prior."""
        return torch.bincount(self.assigned, minlength=self.clusters).float()

    @property
    def fitted(self) -> bool:
        return bool(self.assigned[0] >= 0)

    def train(self, mode: bool = True) -> ClusterLabels:
        """The frozen critic stays in eval mode (no power iterations, no batch statistics, no augmentation)."""
        super().train(mode)
        self.critic.eval()
        return self

    @torch.no_grad()
    def features(self, x: Tensor) -> Tensor:
        return self.critic.features(x).float().flatten(1)

    @torch.no_grad()
    def forward(self, x: Tensor) -> Tensor:
        """The label of each real row: its nearest centre (k-means' own assignment rule)."""
        return torch.cdist(self.features(x), self.centers).argmin(1)

    def draw(self, n: int, generator: torch.Generator) -> Tensor:
        """n labels from the clusters' sizes (the authors sample the generator's classes from the
        empirical distribution of the clustering)."""
        return torch.multinomial(self.sizes.cpu(), n, replacement=True, generator=generator)

    @torch.no_grad()
    def fit(self, critic: nn.Module, images: Tensor, seed: int) -> None:
        """Recluster `images` (the same set every time) in the features of `critic`, which is copied
        and frozen; the first clustering starts from k-means++, a later one from the old clusters."""
        self.critic = self._frozen(critic).to(self.centers.device)
        features = torch.cat([self.features(x.to(self.centers.device)) for x in images.split(FEATURE_BATCH)])
        points = features.double().cpu().numpy()
        if self.fitted:
            previous = self.assigned.cpu().numpy()
            start = self._old_cluster_means(points, previous, np.random.default_rng(seed))
            kmeans = KMeans(self.clusters, init=start, n_init=1, tol=0, random_state=seed).fit(points)
            names = self._match(kmeans.labels_, previous)
        else:
            kmeans = KMeans(self.clusters, n_init=KMEANS_RESTARTS, tol=0, random_state=seed).fit(points)
            names = np.arange(self.clusters)
        labels = torch.as_tensor(names[kmeans.labels_])
        centers = np.empty_like(kmeans.cluster_centers_)
        centers[names] = kmeans.cluster_centers_
        self.centers.copy_(torch.as_tensor(centers))
        self.assigned.copy_(labels)

    def _old_cluster_means(self, points: np.ndarray, previous: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """The new features' mean over each old cluster; an empty one starts at a random point."""
        sums = np.zeros((self.clusters, points.shape[1]))
        np.add.at(sums, previous, points)
        counts = np.bincount(previous, minlength=self.clusters)
        means = sums / np.maximum(counts, 1)[:, None]
        empty = counts == 0
        means[empty] = points[rng.choice(len(points), int(empty.sum()), replace=False)]
        return means

    def _match(self, new: np.ndarray, old: np.ndarray) -> np.ndarray:
        """names[j]: the old cluster that new cluster j overlaps most, one-to-one (Hungarian)."""
        overlap = np.zeros((self.clusters, self.clusters))
        np.add.at(overlap, (new, old), 1)
        rows, cols = linear_sum_assignment(overlap, maximize=True)
        names = np.empty(self.clusters, dtype=np.int64)
        names[rows] = cols
        return names
