"""Mode metrics for 2D mixtures (PacGAN, Lin et al. 2018, Sec. 5.1; VEEGAN, Srivastava et al. 2017)
and the exact earth mover's distance (POT)."""

from __future__ import annotations

import numpy as np
import torch

from gan_modules.metrics.scores import kl_to_uniform


def assign_modes(samples: torch.Tensor, modes: torch.Tensor, std: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Nearest mode of each sample, and whether it is "high quality": within 3 std of that mode."""
    dist = torch.cdist(samples.float(), modes.float())
    nearest, which = dist.min(dim=1)
    return which, nearest <= 3 * std


def mode_metrics(samples: torch.Tensor, modes: torch.Tensor, std: float) -> dict[str, float]:
    """The PacGAN Table 1 protocol on a batch of generated samples (2,500 in the paper).

    modes      number of modes that received at least one high-quality sample
    hq_pct     percentage of samples within 3 std of their nearest mode
    reverse_kl KL(generated mode histogram || uniform), histogram over high-quality samples;
               a mode with none contributes 0 (0 log 0), so collapse shows up as log(M / covered)
    """
    which, good = assign_modes(samples, modes, std)
    counts = torch.bincount(which[good], minlength=len(modes))
    covered = int((counts > 0).sum())
    reverse_kl = kl_to_uniform(counts) if counts.sum() > 0 else float("inf")
    return {"modes": float(covered), "hq_pct": 100.0 * float(good.float().mean()), "reverse_kl": reverse_kl}


def exact_emd(a: torch.Tensor, b: torch.Tensor) -> float:
    """Exact W1 between two equal-weight point clouds (network simplex via POT), Euclidean cost."""
    import ot

    x, y = a.detach().double().cpu().numpy(), b.detach().double().cpu().numpy()
    cost = ot.dist(x, y, metric="euclidean")
    wa, wb = np.full(len(x), 1.0 / len(x)), np.full(len(y), 1.0 / len(y))
    return float(ot.emd2(wa, wb, cost, numItermax=10_000_000))
