"""Mean +- std over seeds (the protocol of Lucic et al. 2018, "Are GANs Created Equal?": report the
distribution over seeds, never the best run), as Markdown and CSV.

The std is the sample standard deviation (ddof = 1) of the per-seed values; a run that failed
(diverged, crashed) is counted in `failed`, not averaged, and the table says so.
"""

from __future__ import annotations

import csv
import math
import os
import platform
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any


def generated_line(runs: str) -> str:
    """A report's "generated" line: when, on what host and torch, and how the fits ran (`runs`)."""
    import torch  # reports import without torch until one is written

    return (
        f"- generated {datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC on {platform.machine()} "
        f"({os.cpu_count()} CPU cores, torch {torch.__version__}, {runs})"
    )


# metric -> (column title, digits); the PacGAN Table 1 columns, then EMD and image metrics
METRIC_FORMAT: dict[str, tuple[str, int]] = {
    "modes": ("modes", 1),
    "hq_pct": ("% high quality", 1),
    "reverse_kl": ("reverse KL", 3),
    "channel_kl": ("digit KL (sum over channels)", 3),
    "digit_confidence": ("digit confidence", 3),
    "emd": ("EMD", 3),
    "fid": ("FID", 2),
    "is_mean": ("IS", 2),
    "kid_mean": ("KID", 4),
    "precision": ("precision", 3),
    "recall": ("recall", 3),
    "classes_covered": ("classes", 1),
    "class_kl": ("KL to uniform", 3),
    "confidence": ("confidence", 3),
    "class_accuracy": ("class accuracy", 3),
    "intra_fid": ("intra-FID", 2),
    "fit_cpu_min": ("fit CPU min", 2),
    "fit_wall_min": ("fit wall min", 2),
}
# Metrics a conditional evaluation also reports per class k, as `<name>_<k>` (docs/conditional.md).
PER_CLASS = ("class_accuracy", "intra_fid")


def metric_format(metric: str) -> tuple[str, int]:
    """(column title, digits) of a metric; a per-class `<name>_<k>` takes its metric's."""
    base, _, k = metric.rpartition("_")
    if metric not in METRIC_FORMAT and base in PER_CLASS and k.isdigit():
        return METRIC_FORMAT[base]
    return METRIC_FORMAT.get(metric, (metric, 3))


@dataclass(frozen=True)
class Summary:
    """One (dataset, variant, metric) cell."""

    dataset: str
    variant: str
    metric: str
    n: int
    failed: int
    mean: float
    std: float
    min: float
    max: float
    infinite: int = 0  # runs whose value is +-inf (e.g. reverse KL with no high-quality sample)


def mean_std(values: Sequence[float]) -> tuple[float, float]:
    """Mean and sample std (ddof = 1; 0 for one value). Any inf makes the mean inf and std nan."""
    n = len(values)
    if n == 0:
        return math.nan, math.nan
    if any(math.isinf(v) for v in values):
        return math.fsum(values) / n, math.nan
    mean = math.fsum(values) / n
    if n == 1:
        return mean, 0.0
    return mean, math.sqrt(math.fsum((v - mean) ** 2 for v in values) / (n - 1))


def summarize(rows: Iterable[dict[str, Any]], metrics: Sequence[str]) -> list[Summary]:
    """Group run rows (keys dataset, variant, status, <metrics>) by (dataset, variant), in first-seen order."""
    groups: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for row in rows:
        groups.setdefault((row["dataset"], row["variant"]), []).append(row)
    out = []
    for (dataset, variant), group in groups.items():
        ok = [r for r in group if r.get("status") == "ok"]
        for metric in metrics:
            values = [float(r[metric]) for r in ok if r.get(metric) is not None]
            if not values and ok:
                continue
            mean, std = mean_std(values)
            lo, hi = (min(values), max(values)) if values else (math.nan, math.nan)
            infinite = sum(math.isinf(v) for v in values)
            out.append(
                Summary(dataset, variant, metric, len(values), len(group) - len(ok), mean, std, lo, hi, infinite)
            )
    return out


def _fmt(value: float, digits: int) -> str:
    if math.isnan(value):
        return "nan"
    if math.isinf(value):
        return "inf" if value > 0 else "-inf"
    return f"{value:.{digits}f}"


def cell(s: Summary) -> str:
    """`mean ± std` at the metric's precision."""
    digits = metric_format(s.metric)[1]
    if s.n == 0:
        return "–"
    if s.infinite:  # a mean and std over an inf say nothing; say how many runs it is
        return f"{_fmt(s.mean, digits)} in {s.infinite} of {s.n} runs"
    return f"{_fmt(s.mean, digits)} ± {_fmt(s.std, digits)}"


def markdown_tables(summaries: Sequence[Summary], metrics: Sequence[str]) -> str:
    """One table per dataset: a row per variant, a `mean ± std` column per metric."""
    parts = []
    for dataset in dict.fromkeys(s.dataset for s in summaries):
        by_variant: dict[str, dict[str, Summary]] = {}
        for s in summaries:
            if s.dataset == dataset:
                by_variant.setdefault(s.variant, {})[s.metric] = s
        shown = [m for m in metrics if any(m in cells for cells in by_variant.values())]
        titles = [metric_format(m)[0] for m in shown]
        lines = [f"### {dataset}", "", "| variant | seeds | " + " | ".join(titles) + " |"]
        lines.append("|---|---|" + "---|" * len(shown))
        for variant, cells in by_variant.items():
            first = next(iter(cells.values()))
            runs = f"{first.n}" + (f" (+{first.failed} failed)" if first.failed else "")
            row = [cell(cells[m]) if m in cells else "–" for m in shown]
            lines.append(f"| {variant} | {runs} | " + " | ".join(row) + " |")
        parts.append("\n".join(lines))
    return "\n\n".join(parts) + "\n"


def per_class_tables(summaries: Sequence[Summary]) -> str:
    """One table per dataset from summaries of per-class metrics (`<name>_<k>`): a row per class, a
    `mean ± std` column per variant and metric, so a class that lags is seen, not averaged away."""
    parts = []
    for dataset in dict.fromkeys(s.dataset for s in summaries):
        cells = {(s.variant, s.metric): s for s in summaries if s.dataset == dataset}
        columns = list(dict.fromkeys((variant, metric.rpartition("_")[0]) for variant, metric in cells))
        classes = sorted({int(metric.rpartition("_")[2]) for _, metric in cells})
        titles = [f"{variant}: {METRIC_FORMAT[base][0]}" for variant, base in columns]
        lines = [f"### {dataset}, per class", "", "| class | " + " | ".join(titles) + " |"]
        lines.append("|---|" + "---|" * len(columns))
        for k in classes:
            row = [cell(cells[(v, f"{base}_{k}")]) if (v, f"{base}_{k}") in cells else "–" for v, base in columns]
            lines.append(f"| {k} | " + " | ".join(row) + " |")
        parts.append("\n".join(lines))
    return "\n\n".join(parts) + "\n"


def write_csv(path: Path, rows: Sequence[dict[str, Any]], columns: Sequence[str] | None = None) -> Path:
    """Rows (dicts) to CSV; columns default to the union of keys in first-seen order."""
    columns = list(columns or dict.fromkeys(k for row in rows for k in row))
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=columns, extrasaction="ignore")
        writer.writeheader()
        writer.writerows(rows)
    return path


def summary_rows(summaries: Sequence[Summary]) -> list[dict[str, Any]]:
    return [s.__dict__.copy() for s in summaries]
