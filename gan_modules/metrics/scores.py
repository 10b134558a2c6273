"""Image metrics from extracted features, through torch-fidelity's own feature -> metric functions.

Using its functions (not a re-implementation) is what makes the numbers equal
`torch_fidelity.calculate_metrics` on the same samples: same covariance estimator and matrix
square root for FID, same shuffling seed and splits for IS, same subset draws for KID.
Defaults are torch-fidelity's: IS 10 splits (Salimans et al. 2016), KID 100 subsets of 1000
(Binkowski et al. 2018), precision/recall with k = 3 (Kynkaanniemi et al. 2019). Density and
coverage come from the authors' `prdc` package, with their k = 5 (Naeem et al. 2020).
Convention: `fake` is torch-fidelity's input1 (generated), `real` its input2.
"""

from __future__ import annotations

import contextlib
import io
import math

import prdc
import torch
from torch_fidelity.defaults import DEFAULTS
from torch_fidelity.metric_fid import KEY_METRIC_FID, fid_features_to_statistics, fid_statistics_to_metric
from torch_fidelity.metric_isc import KEY_METRIC_ISC_MEAN, KEY_METRIC_ISC_STD, isc_features_to_metric
from torch_fidelity.metric_kid import KEY_METRIC_KID_MEAN, KEY_METRIC_KID_STD, kid_features_to_metric
from torch_fidelity.metric_prc import KEY_METRIC_PRECISION, KEY_METRIC_RECALL, prc_features_to_metric

IS_SPLITS: int = DEFAULTS["isc_splits"]
KID_SUBSETS: int = DEFAULTS["kid_subsets"]
KID_SUBSET_SIZE: int = DEFAULTS["kid_subset_size"]
PR_NEIGHBORHOOD: int = DEFAULTS["prc_neighborhood"]
DC_NEIGHBORHOOD: int = 5  # Naeem et al. 2020, Sec. 4: k = 5 for density and coverage
RNG_SEED: int = DEFAULTS["rng_seed"]


def fid_statistics(features: torch.Tensor) -> dict:
    """Mean and covariance (Heusel et al. 2017), as torch-fidelity computes and caches them."""
    return fid_features_to_statistics(features.detach().float().cpu())


def fid_from_statistics(fake: dict, real: dict) -> float:
    return float(fid_statistics_to_metric(fake, real, verbose=False)[KEY_METRIC_FID])


def fid(fake: torch.Tensor, real: torch.Tensor) -> float:
    return fid_from_statistics(fid_statistics(fake), fid_statistics(real))


def inception_score(logits: torch.Tensor, splits: int = IS_SPLITS) -> tuple[float, float]:
    """exp(E_x KL(p(y|x) || p(y))), mean and std over `splits` shuffled splits."""
    out = isc_features_to_metric(logits.detach().float().cpu(), splits=splits, shuffle=True, rng_seed=RNG_SEED)
    return float(out[KEY_METRIC_ISC_MEAN]), float(out[KEY_METRIC_ISC_STD])


def kid(
    fake: torch.Tensor, real: torch.Tensor, subsets: int = KID_SUBSETS, subset_size: int = KID_SUBSET_SIZE
) -> tuple[float, float]:
    """Unbiased MMD^2 with the cubic polynomial kernel, mean and std over random subsets."""
    if subset_size > min(len(fake), len(real)):
        raise ValueError(
            f"kid_subset_size={subset_size} is invalid for {len(fake)} generated and {len(real)} real samples; "
            "allowed: at most the smaller of the two"
        )
    out = kid_features_to_metric(
        fake.detach().float().cpu(),
        real.detach().float().cpu(),
        kid_subsets=subsets,
        kid_subset_size=subset_size,
        rng_seed=RNG_SEED,
        verbose=False,
    )
    return float(out[KEY_METRIC_KID_MEAN]), float(out[KEY_METRIC_KID_STD])


def precision_recall(
    fake: torch.Tensor, real: torch.Tensor, neighborhood: int = PR_NEIGHBORHOOD
) -> tuple[float, float]:
    """Improved precision (fakes inside the real k-NN manifold) and recall (reals inside the fake one)."""
    out = prc_features_to_metric(
        fake.detach().float().cpu(),
        real.detach().float().cpu(),
        prc_neighborhood=neighborhood,
        prc_batch_size=DEFAULTS["prc_batch_size"],
        save_cpu_ram=True,  # blockwise distances; identical result to the full matrix
        verbose=False,
    )
    return float(out[KEY_METRIC_PRECISION]), float(out[KEY_METRIC_RECALL])


def density_coverage(
    fake: torch.Tensor, real: torch.Tensor, neighborhood: int = DC_NEIGHBORHOOD
) -> tuple[float, float]:
    """Density and coverage (Naeem et al. 2020), by the authors' `prdc.compute_prdc`.

    density   (1 / kM) sum_j sum_i 1[fake_j in B(real_i, NND_k(real_i))]: how many real k-NN balls
              hold each fake on average (1 for matching distributions; > 1 where fakes crowd)
    coverage  (1 / N) sum_i 1[some fake in B(real_i, NND_k(real_i))]: the share of real balls hit
    """
    if neighborhood + 2 > min(len(fake), len(real)):  # prdc's k-th neighbour search needs k + 2 points
        raise ValueError(
            f"dc_neighborhood={neighborhood} is invalid for {len(fake)} generated and {len(real)} real samples; "
            "allowed: at most the smaller of the two minus 2"
        )
    with contextlib.redirect_stdout(io.StringIO()):  # compute_prdc prints the sample counts
        out = prdc.compute_prdc(
            real_features=real.detach().float().cpu().numpy(),
            fake_features=fake.detach().float().cpu().numpy(),
            nearest_k=neighborhood,
        )
    return float(out["density"]), float(out["coverage"])


def intra_fid(
    fake: torch.Tensor, fake_classes: torch.Tensor, real: torch.Tensor, real_classes: torch.Tensor, num_classes: int
) -> dict[str, float]:
    """Intra-FID (Miyato & Koyama 2018, "cGANs with Projection Discriminator"): FID per class.

    intra_fid     mean over classes of intra_fid_<k>; nan when a class has fewer than 2 samples on a side
    intra_fid_<k> FID of class k's generated features against class k's real features
    """
    out: dict[str, float] = {}
    for k in range(num_classes):
        f, r = fake[fake_classes == k], real[real_classes == k]
        out[f"intra_fid_{k}"] = fid(f, r) if min(len(f), len(r)) >= 2 else math.nan
    return {"intra_fid": sum(out.values()) / num_classes, **out}


def class_accuracy(logits: torch.Tensor, labels: torch.Tensor, num_classes: int) -> dict[str, float]:
    """How often a classifier recognises a conditional generator's sample as the class it was asked
    for (the AC-GAN / cGAN "classification accuracy" of generated samples; Odena et al. 2017, Sec. 4.1).

    class_accuracy     mean over classes of class_accuracy_<k> (each class weighs the same)
    class_accuracy_<k> share of the samples generated for class k that the classifier labels k
    """
    hits = logits.argmax(1) == labels
    per_class = {
        k: hits[labels == k].double().mean().item() if (labels == k).any() else math.nan for k in range(num_classes)
    }
    return {
        "class_accuracy": sum(per_class.values()) / num_classes,
        **{f"class_accuracy_{k}": v for k, v in per_class.items()},
    }


def kl_to_uniform(counts: torch.Tensor) -> float:
    """KL(histogram || uniform over its bins), 0 log 0 = 0: 0 when balanced, log(K / covered) at worst."""
    p = counts.double() / counts.sum()
    nz = p > 0
    return float((p[nz] * torch.log(p[nz] * len(counts))).sum())


def top_class_probability(logits: torch.Tensor) -> torch.Tensor:
    """(N,) each sample's top-class softmax probability: how recognisable it is on its own (the
    per-sample half of the Inception Score; blurry or hybrid digits score low)."""
    return logits.float().softmax(1).amax(1)


def class_coverage(logits: torch.Tensor, num_classes: int | None = None) -> dict[str, float]:
    """Mode coverage over the data's classes, as for Stacked MNIST (VEEGAN; PacGAN Table 2).

    classes_covered  classes predicted for at least one sample
    class_kl         KL(predicted-class histogram || uniform); 0 when balanced, log K for one class
    confidence       mean `top_class_probability`
    """
    num_classes = num_classes or logits.shape[1]
    counts = torch.bincount(logits.argmax(1).cpu(), minlength=num_classes)
    return {
        "classes_covered": float((counts > 0).sum()),
        "class_kl": kl_to_uniform(counts),
        "confidence": float(top_class_probability(logits).mean()),
    }
