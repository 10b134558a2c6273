"""Studies: the budget curves against closed forms and hand computations, the config checks, the
Optuna queue (two workers, one SQLite storage), and a tiny real study (2 objectives x 3 trials,
real `gan-lab study` subprocesses) end to end, killed mid-way and resumed, and through submitit."""

from __future__ import annotations

import csv
import json
import math
import os
import re
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import optuna
import pytest
import torch
import yaml
from conftest import STOP_STEPS, signal_group_when
from optuna.distributions import BaseDistribution, IntDistribution

from gan_modules.studies.config import load_study
from gan_modules.studies.report import best_so_far, expected_best
from gan_modules.studies.runner import Outcome, enqueue, latest_trials, launch, storage, work
from gan_modules.studies.space import fit_arguments, random_points

REPO = Path(__file__).resolve().parent.parent


# ----------------------------------------------------------------------------------- budget curves
def test_best_so_far_is_the_running_best_in_trial_order():
    assert best_so_far([None, 3.0, 5.0, 1.0, None, 2.0], "minimize")[1:] == [3.0, 3.0, 1.0, 1.0, 1.0]
    assert math.isnan(best_so_far([None, 3.0], "minimize")[0])
    assert best_so_far([0.2, 0.1, 0.7], "maximize") == [0.2, 0.2, 0.7]


def _expected_min(values: list[float], k: int) -> float:
    """E[min of k draws with replacement] = sum_i v_(i) [((n-i+1)/n)^k - ((n-i)/n)^k], v sorted ascending."""
    v, n = sorted(values), len(values)
    return sum(v[i] * (((n - i) / n) ** k - ((n - i - 1) / n) ** k) for i in range(n))


def test_expected_best_matches_the_closed_form_of_the_bootstrap():
    values = [3.0, 1.0, 2.0, 5.0, 4.0]
    rows = expected_best(values, [1, 2, 5], "minimize", resamples=40000, seed=1)
    for row in rows:
        assert row["mean"] == pytest.approx(_expected_min(values, row["k"]), abs=0.02)
        assert row["no_success"] == 0.0
    assert rows[0]["lo"] == 1.0 and rows[0]["hi"] == 5.0  # k = 1: the band spans the values themselves
    # maximize is minimize of the negated values
    (up,) = expected_best(values, [2], "maximize", resamples=40000, seed=1)
    assert up["mean"] == pytest.approx(-_expected_min([-v for v in values], 2), abs=0.02)


def test_expected_best_counts_failed_trials_as_draws_that_never_win():
    # 2 of 4 trials failed: P(k draws all failed) = (1/2)^k; the others' best is of the successes
    values = [None, 1.0, None, 3.0]
    for row in expected_best(values, [1, 3], "minimize", resamples=40000, seed=2):
        assert row["no_success"] == pytest.approx(0.5 ** row["k"], abs=0.01)
    (one,) = expected_best(values, [1], "minimize", resamples=40000, seed=2)
    assert one["mean"] == pytest.approx(2.0, abs=0.03)  # a successful single draw: 1 or 3, equally likely


def test_fit_arguments_join_list_elements_and_write_json_values():
    params = {"model.init_args.lr_d": 1e-4, "model.init_args.betas[1]": 0.9, "model.init_args.betas[0]": 0.5}
    args = fit_arguments({**params, "model.init_args.loss": "hinge"})
    assert fit_arguments({"a.lr_g,a.lr_d": 0.5, "b[0],c": 1}) == ["--a.lr_g=0.5", "--a.lr_d=0.5", "--c=1", "--b=[1]"]
    assert args == [
        "--model.init_args.lr_d=0.0001",
        "--model.init_args.loss=hinge",
        "--model.init_args.betas=[0.5, 0.9]",
    ]


# ---------------------------------------------------------------------------------- config checks
def _study_file(tmp_path: Path, body: str) -> Path:
    fit = tmp_path / "fit.yaml"
    fit.write_text("model: {class_path: gan_modules.AdversarialModule}\n")
    path = tmp_path / "study.yaml"
    path.write_text(f"name: s\nmetrics: {{emd: minimize}}\n{body}".replace("FIT", str(fit)))
    return path


SPACE = "space: {model.init_args.lr_d: {type: log_uniform, low: 1.0e-5, high: 1.0e-2}}\n"


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (SPACE + "objectives: {a: {config: [FIT], colour: red}}\n", "study.objectives.a.colour='red' is invalid"),
        ("objectives: {a: {config: [FIT]}}\n", "study.objectives.a.space={} is invalid; allowed: at least one"),
        ("space: {model.init_args.lr_d: {type: uniform, low: 0.1, high: 0.01}}\nobjectives: {a: {args: []}}\n",
         "study.space.model.init_args.lr_d.low=0.1 is invalid; allowed: a value <= high (0.01)"),
        (SPACE + "sampler: {name: cmaes}\nobjectives: {a: {config: [FIT]}}\n",
         "study.sampler={'name': 'cmaes'} is invalid"),
        ("space: {lr: {type: normal, low: 0, high: 1}}\nobjectives: {a: {config: [FIT]}}\n",
         "study.space.lr.type='normal' is invalid; allowed: log_uniform, uniform, int"),
        (SPACE + "objectives: {a: {config: [nope.yaml]}}\n", "study.objectives.a.config='nope.yaml' is invalid"),
    ],
)  # fmt: skip
def test_bad_study_configs_fail_in_one_line_before_any_fit(tmp_path, capsys, body, message):
    from gan_modules.commands import study

    path = _study_file(tmp_path, body)
    with pytest.raises(ValueError, match=re.escape(message)) as err:
        load_study(path, base=tmp_path)
    assert "\n" not in str(err.value)
    out = tmp_path / "out"
    with pytest.MonkeyPatch.context() as mp:
        mp.chdir(tmp_path)  # relative config paths are taken from the working directory
        assert study.main(["--config", str(path), "--out", str(out)]) == 2
    err_text = capsys.readouterr().err
    assert err_text.count("\n") == 1 and message in err_text
    assert not out.exists()  # nothing was enqueued, nothing trained


def test_a_bad_study_config_fails_in_one_line_through_gan_lab(tmp_path):
    path = _study_file(tmp_path, "space: {x: {type: int, low: 5, high: 1}}\nobjectives: {a: {config: [FIT]}}\n")
    proc = subprocess.run(
        [sys.executable, "-m", "gan_modules.cli", "study", "--config", str(path), "--out", str(tmp_path / "out")],
        capture_output=True, text=True, env={**os.environ, "PYTHONPATH": str(REPO)},
    )  # fmt: skip
    assert proc.returncode == 2 and not (tmp_path / "out").exists()
    assert proc.stderr == "gan-lab study: error: study.space.x.low=5 is invalid; allowed: a value <= high (1)\n"


def test_an_unknown_objective_on_the_command_line_fails_in_one_line(tmp_path, capsys):
    from gan_modules.commands import study

    path = _study_file(tmp_path, SPACE + "objectives: {a: {config: [FIT]}}\n")
    assert study.main(["--config", str(path), "--out", str(tmp_path / "o"), "--objectives", "a,zz"]) == 2
    assert capsys.readouterr().err == "gan-lab study: error: --objectives='zz' is not in the study; allowed: a\n"
    assert not (tmp_path / "o").exists()


# ------------------------------------------------------------------------------------- the queue
@dataclass
class RecordingTask:
    """Runs no fit: each trial appends `<pid> <index>` to a file (appends of one short line are atomic)."""

    log: Path
    heartbeat_s: float = 1.0
    sleep_s: float = 0.02

    def names(self) -> list[str]:
        return ["q"]

    def space(self, name: str) -> dict[str, BaseDistribution]:
        return {"x": IntDistribution(0, 1000)}

    def sampler(self, worker: int) -> optuna.samplers.BaseSampler:
        return optuna.samplers.RandomSampler(seed=worker)

    def execute(self, name: str, index: int, seed: int, params: dict[str, Any]) -> Outcome:
        with self.log.open("a") as f:
            f.write(f"{os.getpid()} {index} {params['x']}\n")
        time.sleep(self.sleep_s)
        return Outcome(float(params["x"]), {})


def test_two_workers_on_one_sqlite_storage_never_run_a_trial_twice(tmp_path, monkeypatch):
    monkeypatch.setenv("PYTHONPATH", f"{Path(__file__).parent}{os.pathsep}{os.environ.get('PYTHONPATH', '')}")
    url = f"sqlite:///{tmp_path / 'q.db'}"
    study = optuna.create_study(study_name="q", storage=storage(url, 1.0))
    points = [{"index": i, "seed": i, "params": {"x": 7 * i}} for i in range(60)]
    assert enqueue(study, points) == 60 and enqueue(study, points) == 0  # a second enqueue adds nothing
    task = RecordingTask(tmp_path / "ran.txt")
    assert launch(task, url, workers=2) == 60
    lines = [line.split() for line in task.log.read_text().splitlines()]
    assert sorted(int(i) for _, i, _ in lines) == list(range(60))  # each index exactly once
    assert all(int(x) == 7 * int(i) for _, i, x in lines)  # with its enqueued value
    assert len({pid for pid, _, _ in lines}) == 2  # both workers took trials
    trials = latest_trials(optuna.load_study(study_name="q", storage=url))
    assert [t.value for t in trials] == [7.0 * i for i in range(60)]


def _queue(tmp_path: Path, n: int) -> str:
    """A SQLite study "q" with trials 0..n-1 enqueued (x = index); returns its URL."""
    url = f"sqlite:///{tmp_path / 'q.db'}"
    enqueue(optuna.create_study(study_name="q", storage=storage(url, 1.0)),
            [{"index": i, "seed": i, "params": {"x": i}} for i in range(n)])  # fmt: skip
    return url


def test_only_a_worker_given_its_launcher_checks_it(tmp_path):
    """A pool worker whose launcher is not its parent takes no trial; the in-process worker (no
    launcher given, e.g. under `nohup` after its shell has gone) runs the whole queue."""
    url = _queue(tmp_path, 5)
    task = RecordingTask(tmp_path / "ran.txt")
    assert work(task, url, 0, launcher=os.getpid()) == 0 and not task.log.exists()  # we are not our own parent
    assert work(task, url, 0) == 5


LAUNCHER = """
import sys
from pathlib import Path
from test_study import RecordingTask
from gan_modules.studies.runner import launch
launch(RecordingTask(Path(sys.argv[2]), sleep_s=0.5), sys.argv[1], workers=2)
"""


def test_workers_take_no_new_trial_once_their_launcher_is_killed(tmp_path, monkeypatch):
    """SIGKILL of the launcher (as `kill -9`, or a scheduler that signals only the main process):
    its spawned workers finish the trial in hand and stop, instead of running the rest of the queue."""
    import signal
    import subprocess
    import sys

    tests = str(Path(__file__).parent)
    monkeypatch.setenv("PYTHONPATH", f"{tests}{os.pathsep}{os.environ.get('PYTHONPATH', '')}")
    url = _queue(tmp_path, 40)
    log = tmp_path / "ran.txt"
    launcher = subprocess.Popen([sys.executable, "-c", LAUNCHER, url, str(log)])
    deadline = time.monotonic() + 120
    while len(_pids(log)) < 2 and time.monotonic() < deadline:  # both workers at work (one may start late)
        time.sleep(0.05)
    launcher.send_signal(signal.SIGKILL)
    launcher.wait()
    started = len(log.read_text().splitlines())
    time.sleep(4.0)  # eight trials' time: without the check the two workers would go on through the queue
    assert len(log.read_text().splitlines()) <= started + 2  # at most the trial each worker had in hand
    assert started < 40
    workers = _pids(log)
    assert len(workers) == 2 and not any(_running(pid) for pid in workers)  # exited, not idle orphans


def _pids(log: Path) -> set[int]:
    """The processes that recorded a trial in a RecordingTask log."""
    return {int(line.split()[0]) for line in log.read_text().splitlines()} if log.is_file() else set()


def _running(pid: int) -> bool:
    """Whether a process exists and has not exited (an exited orphan may stay a zombie in a container)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    return stat.rpartition(")")[2].split()[0] != "Z"


# -------------------------------------------------------------------------------- a tiny real study
TINY_FIT = """
trainer:
  max_steps: 20
  log_every_n_steps: 10
  enable_model_summary: false
  num_sanity_val_steps: 0
  limit_val_batches: 0
  logger: false
checkpoint: {{every_n_train_steps: 10}}
image_grid: {{every_n_steps: 100}}
model:
  class_path: gan_modules.AdversarialModule
  init_args:
{objective}
    z_dim: 2
    generator: {{arch: mlp, hidden: [16, 16]}}
    critic: {{arch: mlp, hidden: [16, 16]}}
    lr_g: 1.0e-3
data:
  class_path: datamodules.Toy2DDataModule
  init_args: {{dataset: ring8, size: 512, batch_size: 32}}
"""
SEED = 4  # RandomSampler(4) draws n_critic = 0 (an invalid value: a failed trial) for some trials, not all


def _tiny_study(root: Path, heartbeat_s: float = 60.0) -> Path:
    objectives = {
        "wgan_gp": "    loss: wasserstein\n    regularizers: [{name: gradient_penalty, weight: 10.0}]",
        "sngan": "    loss: hinge\n    constraint: spectral_norm",
    }
    for name, objective in objectives.items():
        (root / f"{name}.yaml").write_text(
            TINY_FIT.replace("{objective}", objective).replace("{{", "{").replace("}}", "}")
        )
    path = root / "study.yaml"
    path.write_text(f"""
name: tiny
sampler: {{name: random, seed: {SEED}}}
trials: 3
metrics: {{emd: minimize, modes: maximize}}
heartbeat_s: {heartbeat_s}
evaluate: {{num: 500, num_real: 500}}
space:
  model.init_args.lr_d: {{type: log_uniform, low: 1.0e-4, high: 1.0e-2}}
  model.init_args.n_critic: {{type: int, low: 0, high: 2}}
objectives:
  wgan_gp: {{config: [{root / "wgan_gp.yaml"}]}}
  sngan:
    config: [{root / "sngan.yaml"}]
    space:
      model.init_args.betas[0]: {{type: uniform, low: 0.0, high: 0.9}}
      model.init_args.betas[1]: {{type: uniform, low: 0.9, high: 0.999}}
""")
    return path


def _gan_lab(*args: str, **kwargs: Any) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
    return subprocess.Popen([sys.executable, "-m", "gan_modules.cli", *args], env=env, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, **kwargs)  # fmt: skip


def _csv(path: Path) -> list[dict[str, str]]:
    with path.open() as f:
        return list(csv.DictReader(f))


pytestmark = pytest.mark.xdist_group("study")  # one worker builds the module fixtures, once


@pytest.fixture(scope="module")
def tiny_study(tmp_path_factory):
    root = tmp_path_factory.mktemp("study")
    config, out = _tiny_study(root), root / "out"
    proc = _gan_lab("study", "--config", str(config), "--out", str(out), "--workers", "2")
    output = proc.communicate(timeout=900)[0]
    return {"root": root, "config": config, "out": out, "code": proc.returncode, "output": output}


@pytest.mark.slow
def test_tiny_study_runs_the_drawn_trials_as_fits(tiny_study):
    study = load_study(tiny_study["config"])
    rows = _csv(tiny_study["out"] / "trials.csv")
    assert [(r["objective"], r["trial"]) for r in rows] == [(o, str(i)) for o in ("wgan_gp", "sngan") for i in range(3)]
    failed = 0
    for objective in study.objectives:
        drawn = random_points(objective.space, 3, SEED)  # the draws, recomputed independently of the run
        for i, params in enumerate(drawn):
            row = next(r for r in rows if r["objective"] == objective.name and r["trial"] == str(i))
            assert float(row["model.init_args.lr_d"]) == pytest.approx(params["model.init_args.lr_d"], rel=1e-12)
            folder = tiny_study["out"] / "trials" / objective.name / f"{i:03d}"
            if params["model.init_args.n_critic"] == 0:  # invalid: the fit refuses it in one line
                failed += 1
                assert row["status"] == "failed" and "model.n_critic=0 is invalid" in row["fail_reason"]
                continue
            assert row["status"] == "ok"
            (saved,) = folder.glob("**/config.yaml")  # what the fit itself resolved
            init = yaml.safe_load(saved.read_text())["model"]["init_args"]
            assert init["lr_d"] == pytest.approx(params["model.init_args.lr_d"], rel=1e-12)
            assert init["n_critic"] == params["model.init_args.n_critic"] and init["seed"] == i
            if objective.name == "sngan":
                expected = [params["model.init_args.betas[0]"], params["model.init_args.betas[1]"]]
                assert init["betas"] == pytest.approx(expected, rel=1e-12)
            evaluation = json.loads((folder / "evaluate.json").read_text())
            assert float(row["emd"]) == pytest.approx(evaluation["emd"], rel=1e-12)
    assert 0 < failed < 6  # the seed gives both outcomes
    assert tiny_study["code"] == 1  # a failed trial makes the command fail, after the reports
    assert f"{failed} failed trial(s)" in tiny_study["output"]


@pytest.mark.slow
def test_tiny_study_reports_match_a_hand_computation(tiny_study):
    rows = _csv(tiny_study["out"] / "trials.csv")
    budget = _csv(tiny_study["out"] / "budget.csv")
    summary = {(s["objective"], s["metric"]): s for s in _csv(tiny_study["out"] / "summary.csv")}
    for objective in ("wgan_gp", "sngan"):
        mine = [r for r in rows if r["objective"] == objective]
        emd = [float(r["emd"]) if r["status"] == "ok" else None for r in mine]
        best, hand = math.inf, []
        for value in emd:  # best-so-far by hand, in trial order
            best = min(best, value) if value is not None else best
            hand.append(best)
        curve = [b for b in budget if b["objective"] == objective and b["metric"] == "emd"]
        assert [int(b["k"]) for b in curve] == [1, 2, 3]
        for b, h in zip(curve, hand, strict=True):
            assert float(b["best_so_far"]) == (h if h != math.inf else pytest.approx(float("nan"), nan_ok=True))
        ok = [v for v in emd if v is not None]
        failed = len(emd) - len(ok)
        # k = 3: the chance that 3 draws with replacement all hit a failed trial is (failed / 3)^3
        assert float(curve[2]["no_success"]) == pytest.approx((failed / 3) ** 3, abs=0.03)
        if ok:
            assert float(curve[0]["mean"]) == pytest.approx(sum(ok) / len(ok), rel=0.05)
            assert float(summary[(objective, "emd")]["best"]) == min(ok)
        assert int(summary[(objective, "emd")]["failed"]) == failed
    report = (tiny_study["out"] / "results.md").read_text()
    assert "gan-lab study --config" in report and "## Failed trials" in report
    for png in ("distribution.png", "budget.png"):
        assert (tiny_study["out"] / png).stat().st_size > 0


@pytest.mark.slow
def test_a_killed_study_resumes_with_only_the_missing_trials(tiny_study, tmp_path):
    config = _tiny_study(tmp_path, heartbeat_s=1.0)
    out = tmp_path / "out"
    argv = ["study", "--config", str(config), "--out", str(out), "--workers", "1"]
    proc = _gan_lab(*argv, start_new_session=True)
    url = f"sqlite:///{out / 'study.db'}"
    deadline = time.monotonic() + 600
    while time.monotonic() < deadline:  # kill (worker and its fit: the whole group) after two finished trials
        time.sleep(0.5)
        if not (out / "trials").exists():  # the storage is created and the trials enqueued before this
            continue
        trials = optuna.load_study(study_name="tiny/wgan_gp", storage=url).get_trials(deepcopy=False)
        finished = [t for t in trials if t.state.is_finished()]
        running = [t for t in trials if t.state == optuna.trial.TrialState.RUNNING]
        if len(finished) >= 2 and running:
            break
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    killed = running[0].user_attrs["index"]
    before = {t.user_attrs["index"]: (out / "trials" / "wgan_gp" / f"{t.user_attrs['index']:03d}" / "result.json")
              for t in finished}  # fmt: skip
    stamps = {i: p.stat().st_mtime_ns for i, p in before.items()}
    again = _gan_lab(*argv)
    output = again.communicate(timeout=900)[0]
    assert f"gan-lab study: {6 - len(before)} trial(s) run" in output, output[-2000:]
    assert {i: p.stat().st_mtime_ns for i, p in before.items()} == stamps  # finished trials were not re-run
    wgan = optuna.load_study(study_name="tiny/wgan_gp", storage=url)
    attempts = [t for t in wgan.get_trials(deepcopy=False) if t.user_attrs["index"] == killed]
    assert len(attempts) == 2 and attempts[0].state.name == "FAIL" and attempts[1].state.is_finished()
    # re-enqueued with the same values: those the uninterrupted study ran at this index (the killed
    # attempt may show none, when the kill came between taking the trial and recording its values)
    whole_study = optuna.load_study(study_name="tiny/wgan_gp", storage=f"sqlite:///{tiny_study['out'] / 'study.db'}")
    (same,) = [t for t in whole_study.get_trials(deepcopy=False) if t.user_attrs["index"] == killed]
    assert attempts[1].params == same.params and attempts[0].params in ({}, same.params)
    # the resumed study's trials are the uninterrupted study's (same draws, same seeds, same models)
    resumed, whole = _csv(out / "trials.csv"), _csv(tiny_study["out"] / "trials.csv")
    assert [(r["objective"], r["trial"], r["status"]) for r in resumed] == [
        (r["objective"], r["trial"], r["status"]) for r in whole
    ]
    for a, b in zip(resumed, whole, strict=True):
        if a["status"] == "ok":
            assert float(a["emd"]) == pytest.approx(float(b["emd"]), rel=1e-5)


@pytest.mark.slow  # two studies around one 1,000-iteration fit
def test_a_study_stopped_by_sigterm_enqueues_the_stopped_trial_again_and_resumes_its_fit(tmp_path):
    """SIGTERM to the study's process group (a scheduler's stop): the running fit saves at a step
    boundary and exits 143, its trial is failed as interrupted with a retry of the same parameters
    enqueued (not counted as a failed trial), the study exits 143, and the same command resumes
    that fit from its checkpoint."""
    objective = "    loss: wasserstein\n    regularizers: [{{name: gradient_penalty, weight: 10.0}}]"
    fit = TINY_FIT.replace("max_steps: 20", f"max_steps: {STOP_STEPS}").replace("{objective}", objective)
    (tmp_path / "wgan_gp.yaml").write_text(fit.replace("{{", "{").replace("}}", "}"))
    config = tmp_path / "study.yaml"
    config.write_text(f"""
name: stoppable
sampler: {{name: random, seed: 0}}
trials: 2
metrics: {{emd: minimize}}
evaluate: {{num: 500, num_real: 500}}
space:
  model.init_args.lr_d: {{type: log_uniform, low: 1.0e-4, high: 1.0e-3}}
objectives:
  wgan_gp: {{config: [{tmp_path / "wgan_gp.yaml"}]}}
""")
    out = tmp_path / "out"
    argv = ["study", "--config", str(config), "--out", str(out), "--workers", "1"]
    folder = out / "trials" / "wgan_gp" / "000"
    proc = _gan_lab(*argv, start_new_session=True)
    output = signal_group_when(proc, lambda: any(folder.glob("**/last.ckpt")), signal.SIGTERM)[0]
    assert proc.returncode == 128 + signal.SIGTERM, output[-3000:]
    assert "gan-lab study: stopped by SIGTERM; finished trials are kept; the same command resumes the rest" in output
    (last,) = folder.glob("**/last.ckpt")
    found = re.search(r"stopped by SIGTERM after generator iteration (\d+); saved", (folder / "fit.log").read_text())
    assert found and 10 <= int(found.group(1)) < STOP_STEPS  # really mid-fit
    assert not (folder / "result.json").exists()
    url = f"sqlite:///{out / 'study.db'}"
    trials = optuna.load_study(study_name="stoppable/wgan_gp", storage=url).get_trials(deepcopy=False)
    stopped, retry = [t for t in trials if t.user_attrs["index"] == 0]
    assert stopped.state.name == "FAIL" and stopped.user_attrs["fail_reason"] == "interrupted (gan-lab fit exit 143)"
    assert retry.state.name == "WAITING" and retry.params == stopped.params and "fail_reason" not in retry.user_attrs

    again = _gan_lab(*argv)
    output = again.communicate(timeout=900)[0]
    assert again.returncode == 0 and "gan-lab study: 2 trial(s) run" in output, output[-3000:]
    assert f"resuming from {last}" in (folder / "fit.log").read_text()
    assert torch.load(last, weights_only=False)["global_step"] == STOP_STEPS
    rows = _csv(out / "trials.csv")
    assert [(r["trial"], r["status"]) for r in rows] == [("0", "ok"), ("1", "ok")]  # nothing counted as failed


@pytest.mark.slow
def test_the_submitit_local_executor_runs_a_trial(tiny_study, tmp_path):
    out = tmp_path / "out"
    proc = _gan_lab("study", "--config", str(tiny_study["config"]), "--out", str(out), "--objectives", "wgan_gp",
                    "--trials", "1", "--workers", "1", "--launcher", "submitit", "--cluster", "local")  # fmt: skip
    output = proc.communicate(timeout=600)[0]
    assert "gan-lab study: 1 trial(s) run" in output, output[-2000:]
    (row,) = _csv(out / "trials.csv")
    first = next(r for r in _csv(tiny_study["out"] / "trials.csv") if r["objective"] == "wgan_gp" and r["trial"] == "0")
    assert row["status"] == first["status"]
    if row["status"] == "ok":  # the same draw and seed as in the pool: the same model
        assert float(row["emd"]) == pytest.approx(float(first["emd"]), rel=1e-6)
    assert list((out / "submitit").glob("*_log.out"))  # the job ran through submitit


SHIPPED = sorted(p.stem for p in (REPO / "configs" / "study").glob("*.yaml"))


def test_the_shipped_studies_are_the_three_of_the_protocol():
    assert SHIPPED == ["kurach_grid25", "mnist", "toy2d"]


@pytest.mark.parametrize("name", SHIPPED)
def test_shipped_studies_load_with_their_stated_budgets(name):
    study = load_study(REPO / "configs" / "study" / f"{name}.yaml", base=REPO)
    plans = {o.name: study.points(o) for o in study.objectives}
    expected = {"toy2d": (12, 20), "mnist": (5, 8), "kurach_grid25": (1, 4 * 3 * 2 * 3)}[name]
    assert (len(plans), {len(p) for p in plans.values()}) == (expected[0], {expected[1]})
    for objective in study.objectives:
        for config in objective.configs:
            assert isinstance(yaml.safe_load(config.read_text()), dict), config


def test_the_toy2d_study_gives_both_networks_one_drawn_learning_rate(tmp_path):
    from gan_modules.studies.trial import trial_fit_args

    study = load_study(REPO / "configs" / "study" / "toy2d.yaml", base=REPO)
    objective = next(o for o in study.objectives if o.name == "wgan_gp_grid25")
    (point,) = study.points(objective)[:1]
    lr = point["params"]["model.init_args.lr_g,model.init_args.lr_d"]
    args = trial_fit_args(study, objective, 0, 0, point["params"], tmp_path)
    assert f"--model.init_args.lr_g={json.dumps(lr)}" in args and f"--model.init_args.lr_d={json.dumps(lr)}" in args
    assert 1e-5 <= lr <= 1e-2 and "--data.init_args.dataset=grid25" in args
    gp = point["params"]["gp_weight"]  # a variable of the objective's arguments, drawn log-uniformly
    assert f"--model.init_args.regularizers=[{{name: gradient_penalty, weight: {json.dumps(gp)}}}]" in args
    assert "--trainer.max_steps" not in " ".join(args)  # max_steps travels in the overrides config
    assert yaml.safe_load((tmp_path / "bench_run.yaml").read_text())["trainer"]["max_steps"] == study.max_steps


def test_the_toy2d_study_draws_wgans_clipping_threshold_and_lambda_in_the_authors_ranges(tmp_path):
    """compare_gan's params.py (Lucic et al.'s code): c log-uniform in 10^[-3, 0], lambda in 10^[-1, 2]."""
    from gan_modules.studies.trial import trial_fit_args

    study = load_study(REPO / "configs" / "study" / "toy2d.yaml", base=REPO)
    clip = next(o for o in study.objectives if o.name == "wgan_clip_ring8")
    assert (clip.space["clip_c"].low, clip.space["clip_c"].high, clip.space["clip_c"].log) == (1e-3, 1.0, True)
    gp = next(o for o in study.objectives if o.name == "wgan_gp_ring8").space["gp_weight"]
    assert (gp.low, gp.high, gp.log) == (0.1, 100.0, True)
    point = study.points(clip)[0]["params"]
    args = trial_fit_args(study, clip, 0, 0, point, tmp_path)
    assert f"--model.init_args.constraint={{name: clip, c: {json.dumps(point['clip_c'])}}}" in args
