"""A study's reports, from its Optuna storage: per objective the distribution of the final metric
over trials, the expected best metric against the budget (number of trials) with bootstrap 95%
bands, the fraction of failed trials, and for a grid study the Kurach-style table.

Failed trials (non-finite loss, error, time-out) are rows of every table and count in every
budget: a budget of k trials that drew only failures has no best, and the curve says how often.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from itertools import product
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
import optuna
from matplotlib.ticker import MaxNLocator
from optuna.distributions import CategoricalDistribution
from optuna.trial import TrialState

from gan_modules.bench.aggregate import METRIC_FORMAT, generated_line, mean_std, write_csv
from gan_modules.studies.config import Study
from gan_modules.studies.runner import INDEX, REASON, SEED, latest_trials
from gan_modules.studies.trial import study_name

BOOTSTRAP = 2000  # resamples per budget


def best_so_far(values: Sequence[float | None], direction: str) -> list[float]:
    """The best value among the first k trials, k = 1..n, in trial order (None: a failed trial)."""
    pick = min if direction == "minimize" else max
    out, best = [], math.nan
    for value in values:
        if value is not None and not math.isnan(value):
            best = value if math.isnan(best) else pick(best, value)
        out.append(best)
    return out


def expected_best(
    values: Sequence[float | None], budgets: Sequence[int], direction: str, resamples: int = BOOTSTRAP, seed: int = 0
) -> list[dict[str, float]]:
    """The best metric a budget of k trials reaches, by the bootstrap of Lucic et al. 2018 (Sec. 5,
    Fig. 4-5): draw k of the study's trials with replacement, keep the best, and report the mean
    and the 2.5 / 97.5 percentiles over resamples. A failed trial (None) is drawn like any other
    but is never the best; `no_success` is the fraction of resamples with no successful trial
    (left out of the mean and the band)."""
    pool = np.array([np.nan if v is None else v for v in values], dtype=float)
    success = ~np.isnan(pool)
    sign = 1.0 if direction == "minimize" else -1.0
    keyed = np.where(success, sign * pool, np.inf)
    rng = np.random.default_rng(seed)
    rows = []
    for k in budgets:
        draws = rng.integers(0, len(pool), size=(resamples, k))
        found = sign * keyed[draws].min(axis=1)[success[draws].any(axis=1)]
        if found.size:
            mean, lo, hi = float(found.mean()), *(float(q) for q in np.percentile(found, [2.5, 97.5]))
        else:
            mean = lo = hi = math.nan
        rows.append({"k": k, "mean": mean, "lo": lo, "hi": hi, "no_success": 1 - found.size / resamples})
    return rows


def trial_rows(study: Study, storage: optuna.storages.BaseStorage) -> list[dict[str, Any]]:
    """One row per trial of every objective (the last attempt of each index), failures included."""
    rows = []
    for objective in study.objectives:
        trials = latest_trials(optuna.load_study(study_name=study_name(study, objective.name), storage=storage))
        for t in trials:
            row: dict[str, Any] = {
                "objective": objective.name,
                "trial": t.user_attrs.get(INDEX),
                "seed": t.user_attrs.get(SEED),
                "status": "ok" if t.state == TrialState.COMPLETE else "failed",
                **{m: t.user_attrs.get("metrics", {}).get(m) for m in study.metrics},
                **t.params,
                "fit_wall_s": t.user_attrs.get("fit_wall_s"),
                "fail_reason": t.user_attrs.get(REASON, ""),
            }
            rows.append(row)
    return rows


def _values(rows: Sequence[dict[str, Any]], metric: str) -> list[float | None]:
    """A metric per trial, None for a failed trial (or one whose evaluation lacks the metric)."""
    return [float(r[metric]) if r["status"] == "ok" and r.get(metric) is not None else None for r in rows]


def _title(metric: str) -> str:
    return METRIC_FORMAT.get(metric, (metric, 3))[0]


def _fmt(value: float, metric: str) -> str:
    if value is None or math.isnan(value):
        return "–"
    return "inf" if math.isinf(value) else f"{value:.{METRIC_FORMAT.get(metric, (metric, 3))[1]}f}"


def budget_rows(study: Study, rows: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per objective and metric, for k = 1..n: the best-so-far in trial order and the bootstrap curve."""
    out = []
    for objective in study.objectives:
        mine = [r for r in rows if r["objective"] == objective.name]
        if not mine:
            continue
        for metric, direction in study.metrics.items():
            values = _values(mine, metric)
            budgets = list(range(1, len(values) + 1))
            ordered = best_so_far(values, direction)
            for point, so_far in zip(
                expected_best(values, budgets, direction, seed=study.sampler_seed), ordered, strict=True
            ):
                out.append({"objective": objective.name, "metric": metric, "best_so_far": so_far, **point})
    return out


def summary_rows(study: Study, rows: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per objective and metric: trials, failed, the median / quartiles of the finished ones, the best."""
    out = []
    for objective in study.objectives:
        mine = [r for r in rows if r["objective"] == objective.name]
        for metric, direction in study.metrics.items():
            values = [v for v in _values(mine, metric) if v is not None]
            q = np.percentile(values, [25, 50, 75]) if values else [math.nan] * 3
            best = (min if direction == "minimize" else max)(values) if values else math.nan
            failed = sum(r["status"] != "ok" for r in mine)
            out.append({
                "objective": objective.name, "metric": metric, "trials": len(mine), "failed": failed,
                "failed_fraction": failed / len(mine) if mine else math.nan,
                "q25": float(q[0]), "median": float(q[1]), "q75": float(q[2]), "best": best,
            })  # fmt: skip
    return out


def kurach_table(study: Study, rows: Sequence[dict[str, Any]]) -> str:
    """Grid studies: mean ± std over seeds per cell (Kurach et al. 2019, Table/Fig. of loss x
    regulariser x normalisation): a row per value of the first grid key, a column per combination
    of the others; failed runs are counted in the cell, never averaged."""
    parts = []
    for objective in study.objectives:
        keys = [k for k, d in objective.space.items() if isinstance(d, CategoricalDistribution)]
        mine = [r for r in rows if r["objective"] == objective.name]
        if not keys or not mine:
            continue
        first, rest = keys[0], keys[1:]
        columns = list(product(*(objective.space[k].choices for k in rest)))
        label = lambda key: key.rsplit(".", 1)[-1]  # noqa: E731
        head = [" / ".join(f"{label(k)}={v}" for k, v in zip(rest, c, strict=True)) or study.metric for c in columns]
        lines = [f"### {objective.name}: {_title(study.metric)}, mean ± std over seeds", ""]
        lines += [f"| {label(first)} | " + " | ".join(head) + " |", "|---|" + "---|" * len(columns)]
        for value in objective.space[first].choices:
            cells = []
            for combo in columns:
                group = [
                    r
                    for r in mine
                    if r.get(first) == value and all(r.get(k) == c for k, c in zip(rest, combo, strict=True))
                ]
                finished = [v for v in _values(group, study.metric) if v is not None]
                failed = len(group) - len(finished)
                mean, std = mean_std(finished)
                text = f"{_fmt(mean, study.metric)} ± {_fmt(std, study.metric)}" if finished else "–"
                cells.append(text + (f" ({failed} failed)" if failed else ""))
            lines.append(f"| {value} | " + " | ".join(cells) + " |")
        parts.append("\n".join(lines))
    return "\n\n".join(parts)


def plot_distributions(study: Study, rows: Sequence[dict[str, Any]], path: Path) -> Path:
    """A box plot per metric of the final metric over the finished trials of each objective; failed
    trials and infinite values (e.g. reverse KL with no high-quality sample) cannot be drawn, so the
    title says the tables count them."""
    names = [o.name for o in study.objectives]
    fig, axes = plt.subplots(1, len(study.metrics), figsize=(1.2 * len(names) + 3, 3.6), squeeze=False)
    for ax, metric in zip(axes[0], study.metrics, strict=True):
        data = [
            [v for v in _values([r for r in rows if r["objective"] == n], metric) if v is not None and math.isfinite(v)]
            for n in names
        ]
        ax.boxplot(data, tick_labels=names, showmeans=True)
        ax.set_title(f"{_title(metric)} over trials\n(finite values; the tables count the rest)", fontsize=10)
        ax.tick_params(axis="x", rotation=30)
        ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def plot_budget(study: Study, budget: Sequence[dict[str, Any]], path: Path) -> Path:
    """Expected best metric vs number of trials, mean and bootstrap 95% band (Lucic et al. Fig. 4-5);
    past ten objectives the colours repeat with another line style, and the legend sits outside."""
    fig, axes = plt.subplots(
        1, len(study.metrics), figsize=(4.5 * len(study.metrics) + 2, 3.6), squeeze=False, layout="constrained"
    )
    for ax, metric in zip(axes[0], study.metrics, strict=True):
        for i, objective in enumerate(study.objectives):
            pts = [b for b in budget if b["objective"] == objective.name and b["metric"] == metric]
            if not pts:
                continue
            k, color = [b["k"] for b in pts], f"C{i % 10}"
            ax.plot(
                k, [b["mean"] for b in pts], color=color, linestyle=("-", "--", ":")[i // 10 % 3], label=objective.name
            )
            ax.fill_between(k, [b["lo"] for b in pts], [b["hi"] for b in pts], color=color, alpha=0.12, linewidth=0)
        ax.set_xlabel("budget (trials)")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_title(f"expected best {_title(metric)}")
        ax.grid(alpha=0.3)
    fig.legend(*axes[0][0].get_legend_handles_labels(), loc="outside right upper", fontsize=8)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def write_report(
    study: Study, storage: optuna.storages.BaseStorage, out: Path, command: str, workers: int
) -> tuple[Path, int]:
    """results.md, trials.csv, summary.csv, budget.csv, distribution.png, budget.png under `out`;
    returns the Markdown path and the number of failed trials."""
    rows = trial_rows(study, storage)
    keys = list(dict.fromkeys(k for o in study.objectives for k in o.space))
    write_csv(
        out / "trials.csv",
        rows,
        ["objective", "trial", "seed", "status", *study.metrics, *keys, "fit_wall_s", "fail_reason"],
    )
    summary = summary_rows(study, rows)
    write_csv(out / "summary.csv", summary)
    budget = budget_rows(study, rows)
    write_csv(out / "budget.csv", budget)
    figures = (
        [plot_distributions(study, rows, out / "distribution.png"), plot_budget(study, budget, out / "budget.png")]
        if rows
        else []
    )
    failed = sum(r["status"] != "ok" for r in rows)
    sampler = {
        "random": "random search (Optuna RandomSampler, values drawn before any trial)",
        "tpe": "Optuna TPESampler",
        "grid": f"every grid point x {study.seeds} seed(s)",
    }[study.sampler]
    reasons = sorted({r["fail_reason"].split(":")[0] for r in rows if r["fail_reason"]})
    metrics = ", ".join(f"{_title(m)} ({d})" for m, d in study.metrics.items())
    lines = [
        f"# Study `{study.name}`", "", "Made by:", "", "```bash", command, "```", "",
        generated_line(f"{workers} worker(s), 1 thread each"),
        f"- protocol: {sampler}, seed {study.sampler_seed}; trial i trains with seed i; each trial's *final* model "
        "is evaluated by `gan-lab evaluate` (Lucic et al. 2018)",
        f"- metric: {metrics}; the first is the trial's Optuna value",
        f"- {len(rows)} trials, {failed} failed ({', '.join(reasons) or 'none'}); "
        "failures are rows of every table and draws of every budget",
        "- per-trial values: `trials.csv`; per-objective statistics: `summary.csv`; budget curves: `budget.csv`",
        "", "## Distribution over trials", "",
        "| objective | metric | trials | failed | median [q25, q75] | best |", "|---|---|---|---|---|---|",
    ]  # fmt: skip
    for s in summary:
        lines.append(
            f"| {s['objective']} | {_title(s['metric'])} | {s['trials']} | "
            f"{s['failed']} ({100 * s['failed_fraction']:.0f}%) | "
            f"{_fmt(s['median'], s['metric'])} [{_fmt(s['q25'], s['metric'])}, {_fmt(s['q75'], s['metric'])}] | "
            f"{_fmt(s['best'], s['metric'])} |"
        )
    lines += ["", "## Expected best vs budget (bootstrap mean, 95% band)", ""]
    lines += ["| objective | metric | " + " | ".join(f"k={k}" for k in _shown_budgets(budget)) + " |"]
    lines += ["|---|---|" + "---|" * len(_shown_budgets(budget))]
    for (objective, metric), pts in _group(budget).items():
        by_k = {b["k"]: b for b in pts}
        cells = [
            f"{_fmt(by_k[k]['mean'], metric)} [{_fmt(by_k[k]['lo'], metric)}, {_fmt(by_k[k]['hi'], metric)}]"
            if k in by_k
            else "–"
            for k in _shown_budgets(budget)
        ]
        lines.append(f"| {objective} | {_title(metric)} | " + " | ".join(cells) + " |")
    if study.sampler == "grid":
        lines += ["", "## Grid (Kurach et al. 2019)", "", kurach_table(study, rows)]
    lines += [""] + [f"![{f.stem}]({f.name})" for f in figures]
    failures = [r for r in rows if r["status"] != "ok"]
    if failures:
        lines += ["", "## Failed trials", ""] + [
            f"- {r['objective']} / trial {r['trial']}: {r['fail_reason']}" for r in failures
        ]
    path = out / "results.md"
    path.write_text("\n".join(lines) + "\n")
    return path, failed


def _group(budget: Sequence[dict[str, Any]]) -> dict[tuple[str, str], list[dict[str, Any]]]:
    groups: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for b in budget:
        groups.setdefault((b["objective"], b["metric"]), []).append(b)
    return groups


def _shown_budgets(budget: Sequence[dict[str, Any]]) -> list[int]:
    """k = 1, 2, 5, 10, 20, ... up to the largest budget (and the largest itself)."""
    top = max((b["k"] for b in budget), default=0)
    shown = [k for k in (1, 2, 5, 10, 20, 50, 100, 200, 500) if k < top]
    return [*shown, top] if top else []
