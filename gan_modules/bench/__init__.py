"""Paper-style benchmarks: a grid of variants x datasets x seeds, each a normal `gan-lab fit`,
aggregated into mean +- std tables and metric curves with seed bands."""

from gan_modules.bench.aggregate import Summary, markdown_tables, mean_std, summarize
from gan_modules.bench.grid import Grid, Run, load_grid
from gan_modules.bench.history import MetricsHistory, read_history
from gan_modules.bench.runner import run_grid, run_one

__all__ = [
    "Grid",
    "MetricsHistory",
    "Run",
    "Summary",
    "load_grid",
    "markdown_tables",
    "mean_std",
    "read_history",
    "run_grid",
    "run_one",
    "summarize",
]
