"""Write a bench's results: Markdown tables, CSV files and curve plots, with the command that made them."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from gan_modules.bench.aggregate import (
    METRIC_FORMAT,
    PER_CLASS,
    generated_line,
    markdown_tables,
    per_class_tables,
    summarize,
    summary_rows,
    write_csv,
)
from gan_modules.bench.grid import Grid
from gan_modules.bench.history import read_history
from gan_modules.bench.plots import plot_curves

CURVE_METRICS = ("modes", "hq_pct", "reverse_kl", "emd", "fid", "classes_covered", "class_kl")
RUN_COLUMNS = ("variant", "dataset", "seed", "status", "step")


def run_rows(results: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """Flat per-run rows (timings in minutes), without the nested protocol."""
    rows = []
    for r in results:
        row = {k: v for k, v in r.items() if k not in ("protocol", "error", "command")}
        row["fit_cpu_min"] = r["fit_cpu_s"] / 60
        row["fit_wall_min"] = r["fit_wall_s"] / 60
        rows.append(row)
    return rows


def table_metrics(rows: Sequence[dict[str, Any]]) -> list[str]:
    """The known metrics present in the results, in the table's column order."""
    present = {k for r in rows if r.get("status") == "ok" for k in r}
    return [m for m in METRIC_FORMAT if m in present]


def per_class_columns(rows: Sequence[dict[str, Any]]) -> list[str]:
    """The per-class values (`class_accuracy_<k>`, `intra_fid_<k>`) present in the results, by metric
    then class."""
    present = [k.rpartition("_") for r in rows if r.get("status") == "ok" for k in r]
    classes = {base: sorted({int(k) for b, _, k in present if b == base and k.isdigit()}) for base in PER_CLASS}
    return [f"{base}_{k}" for base in PER_CLASS for k in classes[base]]


def curve_rows(grid: Grid, runs_dir: Path, results: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """Metric histories of the finished, successful runs: the runs the tables average (a run still
    training, or failed, would bend the seed bands)."""
    ok = {(r["variant"], r["dataset"], int(r["seed"])) for r in results if r["status"] == "ok"}
    rows = []
    for run in grid.runs():
        if (run.variant.name, run.dataset.name, run.seed) not in ok:
            continue
        for entry in read_history(run.folder(runs_dir)):
            rows.append({"variant": run.variant.name, "dataset": run.dataset.name, "seed": run.seed, **entry})
    return rows


def _protocol_lines(results: Sequence[dict[str, Any]]) -> list[str]:
    """The evaluation protocol, one line per dataset (their extractors and splits differ); a key
    whose value differs between the variants of a dataset lists its value per variant."""
    by_dataset: dict[str, list[tuple[str, dict[str, Any]]]] = {}
    for r in results:
        if r.get("protocol"):
            by_dataset.setdefault(r["dataset"], []).append((r["variant"], r["protocol"]))
    lines = []
    for dataset, protocols in by_dataset.items():
        parts = []
        for key in protocols[0][1]:
            if key in ("dataset", "shape", "real_size"):
                continue
            per_variant = {variant: p.get(key) for variant, p in protocols}
            if len({repr(v) for v in per_variant.values()}) == 1:
                parts.append(f"{key} = {protocols[0][1][key]}")
            else:
                parts.append(f"{key} = " + " / ".join(f"{v} ({variant})" for variant, v in per_variant.items()))
        where = f" on {dataset}" if len(by_dataset) > 1 else ""
        lines.append(
            f"Evaluation protocol{where} (`gan-lab evaluate` of each run's final `last.ckpt`): {', '.join(parts)}."
        )
    return lines


def _seeds_line(grid: Grid, results: Sequence[dict[str, Any]]) -> str:
    """The grid's seeds, or, while some runs of the grid have no result (a cell may have none at
    all), that the seeds column counts each cell's runs."""
    finished = {(r["variant"], r["dataset"], int(r["seed"])) for r in results}
    if all((run.variant.name, run.dataset.name, run.seed) in finished for run in grid.runs()):
        return str(grid.seeds)
    return f"{grid.seeds} in the grid, not all finished in every cell (the seeds column counts each cell's runs)"


def write_report(
    grid: Grid, results: Sequence[dict[str, Any]], runs_dir: Path, out: Path, command: str, threads: int | None
) -> Path:
    """results.md, summary.csv, runs.csv, curves.csv and curves_<dataset>.png under `out`."""
    out.mkdir(parents=True, exist_ok=True)
    rows = run_rows(results)
    metrics = table_metrics(rows)
    summaries = summarize(rows, metrics)
    per_class = per_class_columns(rows)
    class_summaries = summarize(rows, per_class)
    write_csv(out / "runs.csv", rows, [*RUN_COLUMNS, *metrics, *per_class, "fit_cpu_s", "fit_wall_s", "resumed"])
    write_csv(out / "summary.csv", summary_rows(summaries))
    if per_class:
        write_csv(out / "per_class.csv", summary_rows(class_summaries))
    curves = curve_rows(grid, runs_dir, results)
    figures = []
    if curves:
        write_csv(out / "curves.csv", curves)
        for dataset in grid.datasets:
            shown = [m for m in CURVE_METRICS if m in metrics]
            fig = plot_curves(curves, dataset.name, shown, out / f"curves_{dataset.name}.png")
            if fig is not None:
                figures.append(fig)
    failed = [r for r in results if r["status"] != "ok"]
    lines = [
        f"# Benchmark `{grid.name}`",
        "",
        "Made by:",
        "",
        "```bash",
        command,
        "```",
        "",
        generated_line(f"{threads or 'default'} thread(s) per run"),
        f"- seeds {_seeds_line(grid, results)}: a seed sets `seed_everything`, `model.init_args.seed` and "
        "`data.init_args.seed`",
        "- each cell is mean ± sample std (ddof 1) over seeds of the *final* model (Lucic et al. 2018), "
        "failed runs are counted, never averaged",
        *[f"- {line}" for line in _protocol_lines(results)],
        "- per-run values: `runs.csv`; per-cell statistics: `summary.csv`"
        + ("; per class: `per_class.csv`" if per_class else "")
        + ("; curves: `curves.csv`" if curves else ""),
        "",
        markdown_tables(summaries, metrics),
    ]
    if per_class:
        lines += ["## Per class", "", per_class_tables(class_summaries)]
    for fig in figures:
        lines += [f"![{fig.stem}]({fig.name})", ""]
    if failed:
        lines += ["## Failed runs", ""]
        lines += [
            f"- {r['variant']} / {r['dataset']} / seed {r['seed']}: {r.get('error', '')[-300:]!r}" for r in failed
        ]
    path = out / "results.md"
    path.write_text("\n".join(lines) + "\n")
    return path
