"""SIGINT, SIGTERM and SLURM's requeue signal sent to a real `gan-lab fit` mid-run: the run stops at a
step boundary with a checkpoint, and the same command resumes it to exactly the weights of an
uninterrupted run (CPU, `trainer.deterministic: true`)."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import time
from pathlib import Path

import pytest
import torch
from conftest import fit_command

REPO = Path(__file__).parent.parent
MAX_STEPS = 200
GRID_EVERY = 10  # the interrupt is sent once the first grid shows training is under way


def _overrides(checkpoint_every: int) -> dict:
    return {
        "trainer": {
            "max_steps": MAX_STEPS,
            "deterministic": True,
            "logger": {
                "class_path": "gan_modules.loggers.CSVRunLogger",
                "init_args": {"save_dir": ".", "name": "logs"},
            },
        },
        "checkpoint": {"every_n_train_steps": checkpoint_every},
        "image_grid": {"every_n_steps": GRID_EVERY},
        "data": {"init_args": {"batch_size": 16}},
    }


def _env(**extra: str) -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1", **extra}


def _fit(config: Path, root: Path, env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run(fit_command(config, root), cwd=root.parent, env=env, capture_output=True, text=True)


def _interrupt(config: Path, root: Path, env: dict[str, str], *signals: int, then_kill: Path | None = None):
    """Start a fit, wait for its first sample grid, send `signals`; with `then_kill`, SIGKILL the run as
    soon as that file exists (a cluster's hard stop). Returns (returncode, stderr)."""
    # SIGINT at its default, as in a terminal's foreground job (a background parent, such as a test
    # worker, hands its children SIGINT ignored, and Python then keeps it ignored)
    proc = subprocess.Popen(fit_command(config, root), cwd=root.parent, env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))  # fmt: skip
    try:
        first_grid, deadline = root / "samples" / f"step_{GRID_EVERY:07d}.png", time.monotonic() + 300
        while not first_grid.is_file() and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.01)
        for signum in signals:
            proc.send_signal(signum)
        while then_kill is not None and not then_kill.is_file() and proc.poll() is None:
            time.sleep(0.001)
        if then_kill is not None:
            proc.send_signal(signal.SIGKILL)
        _, stderr = proc.communicate(timeout=300)
    finally:
        proc.kill()
    return proc.returncode, stderr


def _assert_same_weights(done: Path, ref: Path) -> None:
    final, expected = torch.load(done, weights_only=False), torch.load(ref, weights_only=False)
    assert final["global_step"] == expected["global_step"] == MAX_STEPS
    assert final["state_dict"].keys() == expected["state_dict"].keys()
    for name, value in expected["state_dict"].items():
        assert torch.equal(final["state_dict"][name], value), name  # bit-identical on CPU
    for got, want in zip(final["optimizer_states"], expected["optimizer_states"], strict=True):
        for key, moments in want["state"].items():
            for name, tensor in moments.items():
                assert torch.equal(got["state"][key][name], tensor), (key, name)


pytestmark = pytest.mark.xdist_group("interrupts")  # one worker builds the module fixtures, once


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory, make_fit_config) -> tuple[Path, Path]:
    """The config every test runs (no scheduled checkpoint before the signal) and its uninterrupted last.ckpt."""
    folder = tmp_path_factory.mktemp("uninterrupted")
    config = make_fit_config(folder / "run.yaml", folder / "run", **_overrides(checkpoint_every=1000))
    ref = _fit(config, folder / "run", _env())
    assert ref.returncode == 0, ref.stderr[-3000:]
    return config, folder / "run" / "checkpoints" / "last.ckpt"


def _stop_and_resume(uninterrupted: tuple[Path, Path], tmp_path: Path, signum: int, returncode: int) -> None:
    config, reference = uninterrupted
    root = tmp_path / "interrupted"
    code, stderr = _interrupt(config, root, _env(), signum)
    last = root / "checkpoints" / "last.ckpt"
    name = signal.Signals(signum).name
    found = re.search(rf"gan-lab: stopped by {name} after generator iteration (\d+); saved (\S+);", stderr)
    assert code == returncode and found, (code, stderr[-3000:])
    stopped_at = int(found.group(1))
    assert found.group(2) == str(last)
    assert GRID_EVERY <= stopped_at < MAX_STEPS  # really mid-run
    assert torch.load(last, weights_only=False)["global_step"] == stopped_at

    again = _fit(config, root, _env())
    assert again.returncode == 0, again.stderr[-3000:]
    assert f"resuming from {last}" in again.stdout
    _assert_same_weights(last, reference)


@pytest.mark.slow  # three gan-lab processes
def test_ctrl_c_writes_last_ckpt_and_the_same_command_resumes_to_the_uninterrupted_weights(uninterrupted, tmp_path):
    _stop_and_resume(uninterrupted, tmp_path, signal.SIGINT, returncode=128 + signal.SIGINT)


@pytest.mark.slow  # three gan-lab processes
def test_sigterm_writes_last_ckpt_and_the_same_command_resumes_to_the_uninterrupted_weights(uninterrupted, tmp_path):
    _stop_and_resume(uninterrupted, tmp_path, signal.SIGTERM, returncode=128 + signal.SIGTERM)


@pytest.mark.slow  # three gan-lab processes
def test_slurm_requeue_signal_checkpoints_at_a_step_boundary_through_lightnings_auto_requeue(uninterrupted, tmp_path):
    """SLURM's SIGUSR1 before a time limit: Lightning writes `hpc_ckpt_1.ckpt` and runs `scontrol requeue
    <job>` (here a stand-in on PATH that records its arguments); SLURM then kills the job, and the
    requeued job's command resumes from that checkpoint."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    requeued = tmp_path / "requeued"
    (bin_dir / "scontrol").write_text(f'#!/bin/sh\necho "$@" > {requeued}\n')
    (bin_dir / "scontrol").chmod(0o755)
    slurm = {
        "SLURM_NTASKS": "1",
        "SLURM_JOB_NAME": "gan",
        "SLURM_JOB_ID": "4242",
        "SLURM_NODELIST": "localhost",
        "SLURM_PROCID": "0",
        "SLURM_LOCALID": "0",
        "SLURM_NODEID": "0",
        "PATH": f"{bin_dir}:{os.environ['PATH']}",
    }
    config, reference = uninterrupted
    root = tmp_path / "requeued_run"
    code, stderr = _interrupt(config, root, _env(**slurm), signal.SIGUSR1, then_kill=requeued)
    assert code == -signal.SIGKILL, stderr[-3000:]
    assert requeued.read_text().split() == ["requeue", "4242"]
    hpc = root / "hpc_ckpt_1.ckpt"
    assert GRID_EVERY <= torch.load(hpc, weights_only=False)["global_step"] < MAX_STEPS
    assert not (root / "checkpoints" / "last.ckpt").exists()

    again = _fit(config, root, _env(**slurm))
    assert again.returncode == 0, again.stderr[-3000:]
    assert f"resuming from {hpc}" in again.stdout
    _assert_same_weights(root / "checkpoints" / "last.ckpt", reference)
