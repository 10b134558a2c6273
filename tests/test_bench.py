"""The bench: aggregation against hand-computed statistics, grid validation, and a tiny real grid
(2 variants x 1 dataset x 2 seeds, real `gan-lab fit` subprocesses) checked end to end."""

from __future__ import annotations

import csv
import json
import math
import os
import re
import signal
import statistics
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
import yaml
from conftest import CSV_LOGGER, STOP_STEPS, WGAN_GP, fit_yaml, signal_group_when

from gan_modules.bench.aggregate import cell, markdown_tables, mean_std, summarize
from gan_modules.bench.grid import load_grid, parse_seeds
from gan_modules.bench.plots import seed_band


# ------------------------------------------------------------------------------------ aggregation
def test_mean_std_matches_hand_computation_and_statistics_module():
    # [1, 2, 4]: mean 7/3; squared deviations 16/9, 1/9, 25/9 -> sum 42/9, / (n - 1) = 7/3
    mean, std = mean_std([1.0, 2.0, 4.0])
    assert mean == pytest.approx(7 / 3, abs=1e-15)
    assert std == pytest.approx(math.sqrt(7 / 3), abs=1e-15)
    values = [0.013, 0.027, 0.004, 0.019, 0.008]
    assert mean_std(values) == pytest.approx((statistics.mean(values), statistics.stdev(values)), abs=1e-15)
    assert mean_std([5.0]) == (5.0, 0.0)
    inf_mean, inf_std = mean_std([1.0, math.inf])
    assert math.isinf(inf_mean) and math.isnan(inf_std)


def test_a_cell_with_infinite_runs_says_how_many():
    rows = [{"dataset": "d", "variant": "v", "status": "ok", "reverse_kl": x} for x in (0.2, math.inf, 0.8)]
    (summary,) = summarize(rows, ["reverse_kl"])
    assert summary.infinite == 1 and cell(summary) == "inf in 1 of 3 runs"
    (finite,) = summarize(rows[:1] + rows[2:], ["reverse_kl"])
    assert finite.infinite == 0 and cell(finite) == "0.500 ± 0.424"  # std of (0.2, 0.8): 0.6 / sqrt(2)


def test_summarize_counts_failed_runs_without_averaging_them():
    rows = [
        {"dataset": "grid25", "variant": "wgan_gp", "status": "ok", "modes": 25.0, "hq_pct": 97.0},
        {"dataset": "grid25", "variant": "wgan_gp", "status": "ok", "modes": 24.0, "hq_pct": 99.0},
        {"dataset": "grid25", "variant": "wgan_gp", "status": "failed"},
        {"dataset": "grid25", "variant": "gan", "status": "ok", "modes": 3.0, "hq_pct": 50.0},
    ]
    cells = {(s.variant, s.metric): s for s in summarize(rows, ["modes", "hq_pct"])}
    wgan = cells[("wgan_gp", "modes")]
    assert (wgan.n, wgan.failed, wgan.mean, wgan.min, wgan.max) == (2, 1, 24.5, 24.0, 25.0)
    assert wgan.std == pytest.approx(math.sqrt(0.5))  # ((0.5^2 + 0.5^2) / 1) ** 0.5
    assert cells[("wgan_gp", "hq_pct")].std == pytest.approx(math.sqrt(2.0))
    assert cells[("gan", "hq_pct")].std == 0.0
    table = markdown_tables(summarize(rows, ["modes", "hq_pct"]), ["modes", "hq_pct"])
    assert "| wgan_gp | 2 (+1 failed) | 24.5 ± 0.7 | 98.0 ± 1.4 |" in table
    assert "| gan | 1 | 3.0 ± 0.0 | 50.0 ± 0.0 |" in table


def test_per_class_table_by_hand():
    """Per-class values (`<metric>_<k>`) get a row per class and a column per variant and metric; a
    variant without a metric (an unconditional run has no class accuracy) gets no column."""
    from gan_modules.bench.aggregate import per_class_tables
    from gan_modules.bench.report import per_class_columns

    rows = [
        {"dataset": "mnist", "variant": "proj", "status": "ok", "class_accuracy_0": 0.9, "class_accuracy_1": 0.8,
         "intra_fid_0": 10.0, "intra_fid_1": 4.0, "fid": 1.0},
        {"dataset": "mnist", "variant": "proj", "status": "ok", "class_accuracy_0": 1.0, "class_accuracy_1": 0.8,
         "intra_fid_0": 20.0, "intra_fid_1": 6.0},
        {"dataset": "mnist", "variant": "uncond", "status": "ok", "intra_fid_0": 30.0, "intra_fid_1": 31.0},
        {"dataset": "mnist", "variant": "uncond", "status": "failed"},
    ]  # fmt: skip
    columns = per_class_columns(rows)
    assert columns == ["class_accuracy_0", "class_accuracy_1", "intra_fid_0", "intra_fid_1"]
    table = per_class_tables(summarize(rows, columns)).splitlines()
    assert table[2] == "| class | proj: class accuracy | proj: intra-FID | uncond: intra-FID |"
    # class 0: mean 0.95, std |0.9 - 1.0| / sqrt(2) = 0.0707; intra-FID 15 ± 10 / sqrt(2) = 7.07
    assert table[4] == "| 0 | 0.950 ± 0.071 | 15.00 ± 7.07 | 30.00 ± 0.00 |"
    assert table[5] == "| 1 | 0.800 ± 0.000 | 5.00 ± 1.41 | 31.00 ± 0.00 |"


def test_seed_band_uses_the_seeds_present_at_each_step():
    rows = [
        {"step": 10, "emd": 1.0},
        {"step": 10, "emd": 3.0},
        {"step": 20, "emd": 0.5},
        {"step": 20, "emd": math.inf},  # a collapsed evaluation is left out of the band
    ]
    steps, mean, std, seeds = seed_band(rows, "emd")
    assert steps == [10, 20] and mean == [2.0, 0.5] and seeds == [2, 1]
    assert std[0] == pytest.approx(math.sqrt(2.0)) and std[1] == 0.0


# ------------------------------------------------------------------------------------- grid file
def _write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ("seeds: 0\n", "bench.seeds=0 is invalid"),
        ("seeds: [1, 1]\n", "bench.seeds=[1, 1] is invalid; allowed: distinct seeds"),
        ("max_steps: -3\n", "bench.max_steps=-3 is invalid"),
        ("colour: red\n", "bench.colour='red' is invalid; allowed: keys name"),
        ("evaluate: {nmu: 5}\n", "bench.evaluate.nmu=5 is invalid"),
    ],
)
def test_grid_errors_are_one_line_and_name_the_key(tmp_path, body, message):
    fit = _write(tmp_path / "fit.yaml", "model: {class_path: gan_modules.AdversarialModule}\n")
    base = f"datasets: {{ring8: {{data: {{class_path: datamodules.Toy2DDataModule}}}}}}\nvariants: {{a: {fit}}}\n"
    with pytest.raises(ValueError, match=re.escape(message)) as err:
        load_grid(_write(tmp_path / "grid.yaml", base + body))
    assert "\n" not in str(err.value)


def test_grid_rejects_missing_config_and_unknown_dataset_override(tmp_path):
    data = "datasets: {ring8: {data: {class_path: datamodules.Toy2DDataModule}}}\n"
    with pytest.raises(ValueError, match=re.escape("bench.variants.a.config='nope.yaml' is invalid")):
        load_grid(_write(tmp_path / "g1.yaml", data + "variants: {a: nope.yaml}\n"), base=tmp_path)
    fit = _write(tmp_path / "fit.yaml", "model: {class_path: gan_modules.AdversarialModule}\n")
    with pytest.raises(ValueError, match=re.escape("bench.variants.a.datasets='grid25' is invalid")):
        load_grid(
            _write(tmp_path / "g2.yaml", data + f"variants: {{a: {{config: {fit}, datasets: {{grid25: []}}}}}}\n")
        )
    assert parse_seeds(3) == [0, 1, 2] and parse_seeds([4, 7]) == [4, 7]


# ------------------------------------------------------------------------------ a real tiny bench
def tiny_fit(path: Path, objective: dict) -> Path:
    """A variant config for the tiny bench: 20 iterations, tiny MLPs, a CSV logger."""
    trainer = {"max_steps": 20, "log_every_n_steps": 10, "limit_val_batches": 0, "logger": CSV_LOGGER}
    model = {"init_args": {**objective, "lr_g": 1.0e-3, "lr_d": 1.0e-3}}
    return fit_yaml(path, trainer=trainer, checkpoint={"every_n_train_steps": 10}, image_grid={"every_n_steps": 100},
                    model=model)  # fmt: skip


pytestmark = pytest.mark.xdist_group("bench")  # one worker builds the module fixtures, once


@pytest.fixture(scope="module")
def tiny_bench(tmp_path_factory):
    """2 variants x ring8 x 2 seeds x 20 generator iterations, plus a variant whose config is invalid."""
    from gan_modules.commands import bench

    root = tmp_path_factory.mktemp("bench")
    tiny_fit(root / "wgan_gp.yaml", WGAN_GP)
    tiny_fit(root / "sngan.yaml", {"loss": "hinge", "regularizers": None, "constraint": "spectral_norm"})
    grid = _write(
        root / "grid.yaml",
        f"""
name: tiny
seeds: 2
curves: {{every_n_steps: 10, num_fake: 500, num_real: 500}}
evaluate: {{num: 500, num_real: 500}}
datasets:
  ring8: {{data: {{class_path: datamodules.Toy2DDataModule, init_args: {{dataset: ring8}}}}}}
variants:
  wgan_gp: {root / "wgan_gp.yaml"}
  sngan: {root / "sngan.yaml"}
  broken: {{config: {root / "wgan_gp.yaml"}, args: [--model.init_args.n_critic=0]}}
""",
    )
    out = root / "out"
    argv = ["--config", str(grid), "--out", str(out), "--threads", "1"]
    assert bench.main(argv) == 1  # the broken variant's cells failed
    return {"root": root, "out": out, "argv": argv, "runs": out / "runs"}


def _csv(path: Path) -> list[dict[str, str]]:
    with path.open() as f:
        return list(csv.DictReader(f))


@pytest.mark.slow  # the tiny bench: 6 fits in subprocesses, a minute or more
def test_tiny_bench_runs_every_cell_as_a_fit_with_its_seed(tiny_bench):
    runs = _csv(tiny_bench["out"] / "runs.csv")
    assert sorted((r["variant"], r["seed"], r["status"]) for r in runs) == [
        ("broken", "0", "failed"),
        ("broken", "1", "failed"),
        ("sngan", "0", "ok"),
        ("sngan", "1", "ok"),
        ("wgan_gp", "0", "ok"),
        ("wgan_gp", "1", "ok"),
    ]
    for variant in ("wgan_gp", "sngan"):
        for seed in (0, 1):
            folder = tiny_bench["runs"] / variant / "ring8" / f"seed{seed}"
            (saved,) = folder.glob("**/config.yaml")  # the resolved config, written by LightningCLI itself
            config = yaml.safe_load(saved.read_text())
            assert config["seed_everything"] == seed
            assert config["model"]["init_args"]["seed"] == seed
            assert config["data"]["init_args"]["seed"] == seed
            assert config["data"]["init_args"]["dataset"] == "ring8"
            assert config["data"]["init_args"]["batch_size"] == 32  # the variant config's value survives
            assert (folder / "checkpoints" / "last.ckpt").is_file()
            result = json.loads((folder / "result.json").read_text())
            assert result["step"] == 20
    broken = json.loads((tiny_bench["runs"] / "broken" / "ring8" / "seed0" / "result.json").read_text())
    assert "model.n_critic=0 is invalid" in broken["error"]
    # different seeds train different models
    wgan = {r["seed"]: float(r["emd"]) for r in runs if r["variant"] == "wgan_gp"}
    assert wgan["0"] != wgan["1"]


@pytest.mark.slow  # the tiny bench: 6 fits in subprocesses, a minute or more
def test_tiny_bench_final_evaluation_matches_the_training_curve_and_a_recomputation(tiny_bench):
    """The last curve point (callback, in the training process) and the table value (`gan-lab evaluate`
    of last.ckpt, in the bench process) are the same protocol on the same generator; both must agree
    with modes/EMD recomputed here from the checkpoint with the metric functions directly."""

    from datamodules import Toy2DDataModule
    from gan_modules.checkpoints import load_module
    from gan_modules.metrics.suite import MetricSettings, generated_samples
    from gan_modules.metrics.toy import exact_emd, mode_metrics

    curves = _csv(tiny_bench["out"] / "curves.csv")
    runs = {(r["variant"], r["seed"]): r for r in _csv(tiny_bench["out"] / "runs.csv")}
    folder = tiny_bench["runs"] / "wgan_gp" / "ring8" / "seed1"
    module = load_module(folder / "checkpoints" / "last.ckpt")
    # the samples the evaluation drew (its default chunking, seed 0); the metrics below are recomputed
    fake = generated_samples(module, 500, MetricSettings().batch_size, seed=0)
    dm = Toy2DDataModule("ring8", size=512, batch_size=32, seed=1)
    expected = mode_metrics(fake, dm.modes, dm.mode_std)
    expected["emd"] = exact_emd(fake, dm.real_samples(500, seed=0))
    table = runs[("wgan_gp", "1")]
    last = [c for c in curves if c["variant"] == "wgan_gp" and c["seed"] == "1" and c["step"] == "20"]
    assert len(last) == 1
    for key in ("modes", "hq_pct", "reverse_kl", "emd"):
        assert float(table[key]) == pytest.approx(expected[key], rel=1e-6, abs=1e-9)
        assert float(last[0][key]) == pytest.approx(expected[key], rel=1e-6, abs=1e-9)
    assert sorted({int(c["step"]) for c in curves if c["variant"] == "wgan_gp"}) == [10, 20]


@pytest.mark.slow  # the tiny bench: 6 fits in subprocesses, a minute or more
def test_tiny_bench_summary_is_the_mean_and_std_of_the_run_rows(tiny_bench):
    runs = _csv(tiny_bench["out"] / "runs.csv")
    summary = {(s["variant"], s["metric"]): s for s in _csv(tiny_bench["out"] / "summary.csv")}
    for variant in ("wgan_gp", "sngan"):
        values = [float(r["emd"]) for r in runs if r["variant"] == variant]
        cell = summary[(variant, "emd")]
        assert float(cell["mean"]) == pytest.approx(statistics.mean(values), rel=1e-12)
        assert float(cell["std"]) == pytest.approx(statistics.stdev(values), rel=1e-12)
        assert int(cell["n"]) == 2 and int(cell["failed"]) == 0
    assert (summary[("broken", "emd")]["n"], summary[("broken", "emd")]["failed"]) == ("0", "2")
    report = (tiny_bench["out"] / "results.md").read_text()
    assert "gan-lab bench --config" in report and "| broken | 0 (+2 failed) |" in report
    assert (tiny_bench["out"] / "curves_ring8.png").stat().st_size > 0


@pytest.mark.slow  # the tiny bench: 6 fits in subprocesses, a minute or more
def test_tiny_bench_rerun_skips_finished_runs(tiny_bench):
    from gan_modules.commands import bench

    result = tiny_bench["runs"] / "wgan_gp" / "ring8" / "seed0" / "result.json"
    before = result.stat().st_mtime_ns, (result.parent / "fit.log").read_text()
    assert bench.main(tiny_bench["argv"]) == 1  # still the broken variant's cells
    assert (result.stat().st_mtime_ns, (result.parent / "fit.log").read_text()) == before


@pytest.mark.slow  # the tiny bench: 6 fits in subprocesses, a minute or more
def test_tiny_bench_report_only_rebuilds_the_same_tables(tiny_bench, tmp_path):
    from gan_modules.commands import bench

    argv = [*tiny_bench["argv"], "--report_only", "--runs_dir", str(tiny_bench["runs"])]
    argv[argv.index("--out") + 1] = str(tmp_path)
    assert bench.main(argv) == 1
    assert (tmp_path / "summary.csv").read_text() == (tiny_bench["out"] / "summary.csv").read_text()
    assert (tmp_path / "runs.csv").read_text() == (tiny_bench["out"] / "runs.csv").read_text()


@pytest.mark.slow  # the tiny bench: 6 fits in subprocesses, a minute or more
def test_tiny_bench_part_of_the_grid_still_reports_every_finished_cell(tiny_bench, tmp_path):
    """Finishing a grid piece by piece (--variants/--datasets) must not drop the other cells from
    the tables, and the report names the command that makes the whole of it."""
    from gan_modules.commands import bench

    argv = [*tiny_bench["argv"], "--variants", "sngan", "--runs_dir", str(tiny_bench["runs"])]
    argv[argv.index("--out") + 1] = str(tmp_path)
    assert bench.main(argv) == 1  # nothing trains; the report still holds the broken cells
    assert (tmp_path / "runs.csv").read_text() == (tiny_bench["out"] / "runs.csv").read_text()
    report = (tmp_path / "results.md").read_text()
    assert "| wgan_gp | 2 |" in report and "--variants" not in report
    assert f"--runs_dir {tiny_bench['runs']}" in report


@pytest.mark.slow  # the tiny bench: 6 fits in subprocesses, a minute or more
def test_tiny_bench_reevaluate_scores_finished_runs_again_and_keeps_their_fits(tiny_bench, tmp_path, capsys):
    """--reevaluate under a changed evaluation protocol (250 samples): the tables hold the new EMD,
    recomputed here from the checkpoint, with the fit records and logs untouched; a cell whose
    evaluation fails keeps its former result."""
    import shutil

    from datamodules import Toy2DDataModule
    from gan_modules.checkpoints import load_module
    from gan_modules.commands import bench
    from gan_modules.metrics.suite import MetricSettings, generated_samples
    from gan_modules.metrics.toy import exact_emd

    runs = tmp_path / "runs"
    shutil.copytree(tiny_bench["runs"], runs, ignore=shutil.ignore_patterns("bench.db*"))
    grid = tmp_path / "grid.yaml"
    original = Path(tiny_bench["argv"][1]).read_text()
    grid.write_text(original.replace("evaluate: {num: 500, num_real: 500}", "evaluate: {num: 250, num_real: 250}"))
    assert grid.read_text() != original
    lost = runs / "sngan" / "ring8" / "seed0"
    (lost / "checkpoints" / "last.ckpt").unlink()
    before = {p: p.read_text() for p in runs.glob("*/ring8/seed*/*") if p.name in ("result.json", "fit.log")}

    argv = ["--config", str(grid), "--out", str(tmp_path / "out"), "--runs_dir", str(runs), "--reevaluate"]
    assert bench.main(argv) == 1  # the broken variant's cells stay failed
    said = capsys.readouterr().out
    assert "sngan / ring8 / seed 0: evaluated again (failed, its former result kept: evaluate: " in said
    assert (lost / "result.json").read_text() == before[lost / "result.json"]
    for path, text in before.items():
        if path.name == "fit.log" or "broken" in str(path):
            assert path.read_text() == text  # nothing trained again
    folder = runs / "wgan_gp" / "ring8" / "seed1"
    old, new = json.loads(before[folder / "result.json"]), json.loads((folder / "result.json").read_text())
    assert {k: new[k] for k in ("fit_wall_s", "fit_cpu_s", "command", "step")} == {
        k: old[k] for k in ("fit_wall_s", "fit_cpu_s", "command", "step")
    }
    assert new["protocol"]["num_fake"] == 250 and old["protocol"]["num_fake"] == 500
    fake = generated_samples(load_module(folder / "checkpoints" / "last.ckpt"), 250, MetricSettings().batch_size, 0)
    real = Toy2DDataModule("ring8", size=512, batch_size=32, seed=1).real_samples(250, seed=0)
    assert new["emd"] == pytest.approx(exact_emd(fake, real), rel=1e-6) and new["emd"] != old["emd"]
    table = {(r["variant"], r["seed"]): r for r in _csv(tmp_path / "out" / "runs.csv")}
    assert float(table[("wgan_gp", "1")]["emd"]) == pytest.approx(new["emd"], rel=1e-9)
    assert "--reevaluate" not in (tmp_path / "out" / "results.md").read_text()


@pytest.mark.slow  # the tiny bench: 6 fits in subprocesses, a minute or more
def test_tiny_bench_refuses_cells_fitted_from_configs_edited_since(tiny_bench, tmp_path, capsys):
    """Cells, finished or interrupted, are neither reported nor resumed under a changed config: the
    bench stops in one line before any fit. The same texts at other paths (a moved checkout) match."""
    import shutil

    from gan_modules.commands import bench

    runs = tmp_path / "runs"
    shutil.copytree(tiny_bench["runs"], runs, ignore=shutil.ignore_patterns("bench.db*"))
    root = tiny_bench["root"]
    grid_text = Path(tiny_bench["argv"][1]).read_text()
    for name in ("wgan_gp.yaml", "sngan.yaml"):
        shutil.copy(root / name, tmp_path / name)
        grid_text = grid_text.replace(str(root / name), str(tmp_path / name))
    grid = _write(tmp_path / "grid.yaml", grid_text)
    logs = {p: p.read_text() for p in runs.glob("*/ring8/seed*/fit.log")}
    argv = ["--config", str(grid), "--out", str(tmp_path / "out"), "--runs_dir", str(runs)]
    assert bench.main(argv) == 1  # all skipped as done; the broken variant's cells stay failed
    assert "was fitted from other configs" not in capsys.readouterr().err

    edited = (tmp_path / "sngan.yaml").read_text().replace("lr_d: 0.001", "lr_d: 0.002")
    assert edited != (tmp_path / "sngan.yaml").read_text()
    (tmp_path / "sngan.yaml").write_text(edited)
    (runs / "sngan" / "ring8" / "seed1" / "result.json").unlink()  # as if interrupted: checkpoints, no result
    for extra in ([], ["--report_only"]):
        assert bench.main(argv + extra) == 2
        (line,) = capsys.readouterr().err.strip().splitlines()
        assert line == (
            f"gan-lab bench: error: {runs / 'sngan' / 'ring8' / 'seed0'} was fitted from other configs or "
            "arguments than the grid gives it now (2 cell(s) in all); allowed: move those run folders away to "
            "fit them again, or restore the former configs"
        )
    assert {p: p.read_text() for p in runs.glob("*/ring8/seed*/fit.log")} == logs  # nothing trained


REPO = Path(__file__).resolve().parent.parent


SHIPPED_GRIDS = sorted(
    p.stem for p in (REPO / "configs" / "bench").glob("*.yaml") if "variants" in yaml.safe_load(p.read_text())
)


def _ring8_grid(root: Path, head: str, variants: str) -> Path:
    """A grid on ring8 whose variants (`variants`, YAML lines) may name `{fit}`, a tiny WGAN-GP config."""
    fit = tiny_fit(root / "wgan_gp.yaml", WGAN_GP)
    ring8 = "  ring8: {data: {class_path: datamodules.Toy2DDataModule, init_args: {dataset: ring8}}}"
    return _write(root / "grid.yaml", f"{head}\ndatasets:\n{ring8}\nvariants:\n{variants.format(fit=fit)}\n")


def _stoppable_bench(root: Path, seeds: int = 2) -> list[str]:
    """A tiny grid of `seeds` seeds whose fits run STOP_STEPS iterations, checkpointing every 10."""
    head = f"name: stoppable\nseeds: {seeds}\nmax_steps: {STOP_STEPS}\nevaluate: {{num: 500, num_real: 500}}"
    grid = _ring8_grid(root, head, "  wgan_gp: {fit}")
    return ["bench", "--config", str(grid), "--out", str(root / "out"), "--threads", "1", "--workers", "2"]


def _foreground_job(argv: list[str], env: dict[str, str]) -> subprocess.Popen:
    """`gan-lab *argv` in its own process group with SIGINT at its default, as a terminal's foreground
    job (a test worker's children inherit it ignored)."""
    return subprocess.Popen([sys.executable, "-m", "gan_modules.cli", *argv], env=env, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))  # fmt: skip


@pytest.mark.slow  # two benches of two 1,000-iteration fits
def test_a_bench_stopped_by_ctrl_c_keeps_each_fits_checkpoint_and_the_same_command_resumes_them(tmp_path):
    """Ctrl-C reaches the whole process group (launcher, pool workers, fits): each fit saves at a step
    boundary and exits 130, the workers record no result for it, the bench exits 130, and the same
    command resumes both fits from their checkpoints instead of counting them as failed; a cell's
    time is that of both its processes."""
    argv = _stoppable_bench(tmp_path)
    folders = [tmp_path / "out" / "runs" / "wgan_gp" / "ring8" / f"seed{s}" for s in (0, 1)]
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
    proc = _foreground_job(argv, env)
    ready = lambda: all((f / "checkpoints" / "last.ckpt").is_file() for f in folders)  # noqa: E731
    _, stderr = signal_group_when(proc, ready, signal.SIGINT)
    assert proc.returncode == 128 + signal.SIGINT, stderr[-3000:]
    assert "gan-lab bench: stopped by SIGINT; finished cells are kept; the same command resumes the rest" in stderr
    stopped_at = []
    for folder in folders:
        assert not (folder / "result.json").exists()  # neither ok nor failed: not finished
        found = re.search(r"stopped by SIGINT after generator iteration (\d+); saved", (folder / "fit.log").read_text())
        assert found, (folder / "fit.log").read_text()[-2000:]
        stopped_at.append(int(found.group(1)))
        assert torch.load(folder / "checkpoints" / "last.ckpt", weights_only=False)["global_step"] == stopped_at[-1]
    assert all(10 <= s < STOP_STEPS for s in stopped_at)  # really mid-fit

    again = subprocess.run([sys.executable, "-m", "gan_modules.cli", *argv], env=env, text=True, capture_output=True)
    assert again.returncode == 0, again.stderr[-3000:]
    for folder, step in zip(folders, stopped_at, strict=True):
        result = json.loads((folder / "result.json").read_text())
        assert result["status"] == "ok" and result["resumed"] is True
        # the cell's cost is both processes' time, not only the resumed one's
        segments = json.loads((folder / "fit_time.json").read_text())
        assert [s["returncode"] for s in segments] == [128 + signal.SIGINT, 0] and result["segments"] == 2
        assert result["fit_cpu_s"] == pytest.approx(math.fsum(s["cpu_s"] for s in segments), rel=1e-12)
        assert result["fit_cpu_s"] > segments[1]["cpu_s"] and segments[0]["cpu_s"] > 0
        assert f"resuming from {folder / 'checkpoints' / 'last.ckpt'}" in (folder / "fit.log").read_text()
        assert torch.load(folder / "checkpoints" / "last.ckpt", weights_only=False)["global_step"] == STOP_STEPS > step


@pytest.mark.slow  # two benches of one 1,000-iteration fit
def test_a_fit_killed_outright_is_a_failed_cell_that_says_so_and_retry_failed_resumes_it(tmp_path):
    """A fit SIGKILLed mid-run (an out-of-memory killer) writes no error of its own: the cell fails
    with the signal named last in its error (what the bench prints), and --retry_failed resumes it
    from its checkpoint, its cost that of both processes."""
    argv = _stoppable_bench(tmp_path, seeds=1)
    folder = tmp_path / "out" / "runs" / "wgan_gp" / "ring8" / "seed0"
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
    proc = _foreground_job(argv, env)
    try:
        deadline = time.monotonic() + 600
        while not (folder / "checkpoints" / "last.ckpt").is_file() and time.monotonic() < deadline:
            time.sleep(0.05)
        found = subprocess.run(["pgrep", "-f", f"{folder}/bench_run.yaml"], capture_output=True, text=True)
        (fit_pid,) = [int(p) for p in found.stdout.split()]  # that cell's `gan-lab fit`, not the bench
        os.kill(fit_pid, signal.SIGKILL)
        stdout, stderr = proc.communicate(timeout=600)
    finally:
        proc.kill()
    assert proc.returncode == 1, stderr[-3000:]  # a failed cell
    result = json.loads((folder / "result.json").read_text())
    ending = "the fit was killed by SIGKILL (out of memory, or kill -9); --retry_failed resumes it from its checkpoint"
    assert result["status"] == "failed" and result["error"].endswith(ending)
    assert ending in stdout + stderr

    again = subprocess.run(
        [sys.executable, "-m", "gan_modules.cli", *argv, "--retry_failed"], env=env, text=True, capture_output=True
    )
    assert again.returncode == 0, again.stderr[-3000:]
    result = json.loads((folder / "result.json").read_text())
    segments = json.loads((folder / "fit_time.json").read_text())
    assert result["status"] == "ok" and result["resumed"] is True
    assert [s["returncode"] for s in segments] == [-signal.SIGKILL, 0]
    assert result["fit_cpu_s"] == pytest.approx(math.fsum(s["cpu_s"] for s in segments), rel=1e-12)


def test_ctrl_c_while_the_bench_parses_its_cells_stops_it_in_one_line_before_any_cell(tmp_path):
    """Ctrl-C during the parse of every cell's command (before the first fit) is a stop: exit 130 and
    one line, neither a bad-argument error nor a traceback, and no run folder."""
    variants = "\n".join(f"  v{i}: {{fit}}" for i in range(6))  # a parse long enough to signal
    argv = ["bench", "--config", str(_ring8_grid(tmp_path, "name: parsing\nseeds: 1", variants)),
            "--out", str(tmp_path / "out")]  # fmt: skip
    scratch = tmp_path / "tmp"
    scratch.mkdir()
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1", "TMPDIR": str(scratch)}
    proc = _foreground_job(argv, env)
    parsing = lambda: any(scratch.glob("*/bench_run.yaml"))  # noqa: E731  (check_cells' scratch file)
    _, stderr = signal_group_when(proc, parsing, signal.SIGINT)
    assert proc.returncode == 128 + signal.SIGINT, stderr[-3000:]
    assert stderr.strip().splitlines()[-1] == "gan-lab bench: stopped by SIGINT; no cell was started", stderr
    assert "Traceback" not in stderr and not (tmp_path / "out").exists()


def test_every_known_grid_is_found():
    assert {"toy2d_modes", "digits", "mnist_vs_baseline"} <= set(SHIPPED_GRIDS)


@pytest.mark.parametrize("name", SHIPPED_GRIDS)
def test_shipped_grids_load_and_name_existing_fit_configs(name):
    grid = load_grid(REPO / "configs" / "bench" / f"{name}.yaml", base=REPO)
    assert grid.variants and grid.datasets and grid.seeds
    for variant in grid.variants:
        for config in variant.configs:
            assert isinstance(yaml.safe_load((REPO / config).read_text()), dict), config


def test_report_protocol_names_per_variant_values_only_where_they_differ():
    from gan_modules.bench.report import _protocol_lines

    base = {"kind": "image", "num_fake": 100, "generator": "generator", "dataset": "mnist"}
    results = [
        {"variant": "a", "dataset": "mnist", "protocol": base},
        {"variant": "b", "dataset": "mnist", "protocol": {**base, "generator": "ema"}},
    ]
    (line,) = _protocol_lines(results)
    assert "num_fake = 100" in line and "generator = generator (a) / ema (b)" in line and "dataset" not in line
    # two datasets: one line each, so a dataset's split/extractor is never read as a variant's
    other = {**base, "num_fake": 500, "dataset": "digits"}
    lines = _protocol_lines([*results, {"variant": "a", "dataset": "digits",
                            "protocol": other}, {"variant": "b", "dataset": "digits", "protocol": other}])  # fmt: skip
    assert [line.split(" (")[0] for line in lines] == ["Evaluation protocol on mnist", "Evaluation protocol on digits"]
    assert "num_fake = 500," in lines[1] and "generator = generator." in lines[1]


def test_report_seeds_line_says_when_cells_have_fewer_finished_runs(tmp_path):
    from gan_modules.bench.report import _seeds_line

    (tmp_path / "a.yaml").write_text("model: {}\n")
    (tmp_path / "grid.yaml").write_text(
        "name: g\nseeds: 3\ndatasets: {ring8: {data: {class_path: T}}, grid25: {data: {class_path: T}}}\n"
        "variants: {a: {config: [a.yaml]}, b: {config: [a.yaml]}}\n"
    )
    grid = load_grid(tmp_path / "grid.yaml", base=tmp_path)
    full = [{"variant": v, "dataset": d, "seed": s} for v in "ab" for d in ("ring8", "grid25") for s in range(3)]
    assert _seeds_line(grid, full) == "[0, 1, 2]"
    partial = [r for r in full if not (r["variant"] == "b" and r["seed"] == 2)]
    assert _seeds_line(grid, partial).startswith("[0, 1, 2] in the grid, not all finished")
    # a cell without a single finished run is incomplete too, though no result names it
    one_cell_missing = [r for r in full if not (r["variant"] == "b" and r["dataset"] == "grid25")]
    assert _seeds_line(grid, one_cell_missing).startswith("[0, 1, 2] in the grid, not all finished")


@pytest.mark.slow  # the tiny bench: 6 fits in subprocesses, a minute or more
def test_tiny_bench_curves_leave_out_runs_without_a_result(tiny_bench, tmp_path):
    """A run still training (history written, no result.json yet) is in neither the tables nor the curves."""
    import shutil

    from gan_modules.commands import bench

    runs = tmp_path / "runs"
    shutil.copytree(tiny_bench["runs"], runs)
    (runs / "wgan_gp" / "ring8" / "seed1" / "result.json").unlink()
    argv = [*tiny_bench["argv"], "--report_only", "--runs_dir", str(runs)]
    argv[argv.index("--out") + 1] = str(tmp_path / "out")
    assert bench.main(argv) == 1  # the broken cells
    before = {(c["variant"], c["seed"]) for c in _csv(tiny_bench["out"] / "curves.csv")}
    after = {(c["variant"], c["seed"]) for c in _csv(tmp_path / "out" / "curves.csv")}
    assert before - after == {("wgan_gp", "1")} and ("wgan_gp", "0") in after


def test_the_reported_command_drops_the_flags_that_pick_part_of_the_grid_or_its_workers():
    from gan_modules.commands.bench import _whole_grid_argv

    argv = ["--config", "g.yaml", "--workers", "2", "--threads", "1", "--variants=a", "--datasets", "b"]
    argv.append("--report_only")
    assert _whole_grid_argv(argv) == ["--config", "g.yaml", "--threads", "1"]


def test_the_reported_command_names_the_environment_its_cpu_times_were_taken_in():
    from gan_modules.commands.bench import reproducing_command

    argv = ["--config", "g 1.yaml", "--workers", "2", "--threads", "1"]
    tunables = "glibc.malloc.mmap_threshold=268435456:glibc.malloc.trim_threshold=1073741824"
    environ = {"GLIBC_TUNABLES": tunables, "HOME": "/root", "OMP_NUM_THREADS": "4"}
    assert reproducing_command(argv, 1, environ) == (
        f"GLIBC_TUNABLES={tunables} OMP_NUM_THREADS=1 gan-lab bench --config 'g 1.yaml' --threads 1"
    )
    assert reproducing_command(argv[:2], None, {}) == "gan-lab bench --config 'g 1.yaml'"


def test_a_misspelled_variant_argument_fails_before_the_first_fit(tmp_path, capsys):
    """Every cell's command is parsed up front: the last variant's typo stops the bench in one line
    before any cell trains (no run folder is made)."""
    from gan_modules.commands import bench

    variants = "  good: {fit}\n  typo: {{config: {fit}, args: [--model.init_args.n_critc=2]}}"
    grid = _ring8_grid(tmp_path, "name: typo\nseeds: 1", variants)
    out = tmp_path / "out"
    assert bench.main(["--config", str(grid), "--out", str(out)]) == 2
    (line,) = capsys.readouterr().err.strip().splitlines()
    assert line.startswith("gan-lab bench: error: variants.typo on ring8: ") and "n_critc" in line
    assert not (out / "runs").exists()
