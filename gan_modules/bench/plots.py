"""Metric vs generator iteration, one line per variant (mean over seeds) with a +-1 std seed band."""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt

from gan_modules.bench.aggregate import METRIC_FORMAT, mean_std


def seed_band(rows: Sequence[dict[str, Any]], metric: str) -> tuple[list[int], list[float], list[float], list[int]]:
    """(steps, mean, std, seeds) of one variant's curve; a step's statistics use the seeds that have it.

    Infinite values (e.g. reverse KL with no high-quality sample) are left out of a step's band.
    """
    by_step: dict[int, list[float]] = {}
    for row in rows:
        value = row.get(metric)
        if value is not None and math.isfinite(float(value)):
            by_step.setdefault(int(row["step"]), []).append(float(value))
    steps = sorted(by_step)
    stats = [mean_std(by_step[s]) for s in steps]
    return steps, [m for m, _ in stats], [s for _, s in stats], [len(by_step[s]) for s in steps]


def plot_curves(rows: Sequence[dict[str, Any]], dataset: str, metrics: Sequence[str], path: Path) -> Path | None:
    """One figure per dataset, a panel per metric; returns None when no run logged a curve."""
    rows = [r for r in rows if r["dataset"] == dataset]
    metrics = [m for m in metrics if any(r.get(m) is not None for r in rows)]
    if not rows or not metrics:
        return None
    variants = list(dict.fromkeys(r["variant"] for r in rows))
    fig, axes = plt.subplots(1, len(metrics), figsize=(4.2 * len(metrics), 3.4), squeeze=False)
    for ax, metric in zip(axes[0], metrics, strict=True):
        for i, variant in enumerate(variants):
            steps, mean, std, _ = seed_band([r for r in rows if r["variant"] == variant], metric)
            if not steps:
                continue
            color = f"C{i % 10}"
            ax.plot(steps, mean, color=color, label=variant)
            ax.fill_between(
                steps,
                [m - s for m, s in zip(mean, std, strict=True)],
                [m + s for m, s in zip(mean, std, strict=True)],
                color=color,
                alpha=0.2,
                linewidth=0,
            )
        ax.set_title(METRIC_FORMAT.get(metric, (metric, 3))[0])
        ax.set_xlabel("generator iteration")
        ax.grid(alpha=0.3)
    axes[0][0].legend(fontsize=8)
    fig.suptitle(f"{dataset}: mean over seeds, band = ±1 std")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
