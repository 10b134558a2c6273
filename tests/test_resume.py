"""Kill -9 a real `gan-lab fit`, run the same command again: it resumes and ends where an
uninterrupted run ends (CPU, `trainer.deterministic: true`), keeping what the first part wrote."""

from __future__ import annotations

import csv
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest
import torch
from conftest import CSV_RUN_LOGGER, fit_command, fit_yaml

REPO = Path(__file__).parent.parent
MAX_STEPS = 150
EVERY = 10


def _env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}


def _rows(metrics_csv: Path) -> dict[int, float]:
    with open(metrics_csv) as f:
        return {int(r["step"]): float(r["train/critic_loss"]) for r in csv.DictReader(f) if r.get("train/critic_loss")}


def _kill_after_first_checkpoint(command: list[str], cwd: Path, last: Path) -> int:
    proc = subprocess.Popen(command, cwd=cwd, env=_env(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 300
        while not last.is_file() and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.01)
        proc.send_signal(signal.SIGKILL)
    finally:
        proc.wait(timeout=60)
    return proc.returncode


@pytest.mark.slow  # two 150-iteration runs in subprocesses
def test_sigkill_then_same_command_resumes_to_the_uninterrupted_weights(tmp_path):
    trainer = {"max_steps": MAX_STEPS, "deterministic": True, "logger": CSV_RUN_LOGGER}
    config = fit_yaml(tmp_path / "run.yaml", trainer=trainer, checkpoint={"every_n_train_steps": EVERY},
                      image_grid={"every_n_steps": EVERY}, data={"init_args": {"batch_size": 16}})  # fmt: skip
    ref_root, root = tmp_path / "uninterrupted", tmp_path / "killed"
    done = subprocess.run(fit_command(config, ref_root), cwd=tmp_path, env=_env(), capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-3000:]

    last = root / "checkpoints" / "last.ckpt"
    assert _kill_after_first_checkpoint(fit_command(config, root), tmp_path, last) == -signal.SIGKILL
    killed_at = torch.load(last, weights_only=False)["global_step"]
    assert EVERY <= killed_at < MAX_STEPS  # really interrupted, mid-run
    written = {p: p.read_bytes() for p in [*root.glob("checkpoints/step*.ckpt"), *root.glob("samples/step_*.png")]}
    first_logs = _rows(root / "logs" / "version_0" / "metrics.csv")
    assert set(range(1, killed_at + 1)) <= set(first_logs)  # flushed at least up to the checkpoint

    again = subprocess.run(fit_command(config, root), cwd=tmp_path, env=_env(), capture_output=True, text=True)
    assert again.returncode == 0, again.stderr[-3000:]
    assert f"resuming from {last}" in again.stdout

    final, ref = (
        torch.load(last, weights_only=False),
        torch.load(ref_root / "checkpoints" / "last.ckpt", weights_only=False),
    )
    assert final["global_step"] == ref["global_step"] == MAX_STEPS
    assert final["gan_lab"]["real_batches_consumed"] == ref["gan_lab"]["real_batches_consumed"] == 2 * MAX_STEPS
    assert final["state_dict"].keys() == ref["state_dict"].keys()
    for name, value in ref["state_dict"].items():
        assert torch.equal(final["state_dict"][name], value), name  # bit-identical on CPU

    # Nothing the first part wrote is lost: its checkpoints, grids and logs are still there, unchanged.
    for path, content in written.items():
        assert path.read_bytes() == content, path
    assert _rows(root / "logs" / "version_0" / "metrics.csv") == first_logs
    second_logs = _rows(root / "logs" / "version_1" / "metrics.csv")
    assert min(second_logs) == killed_at + 1 and max(second_logs) == MAX_STEPS
    # Both parts logged the same values as the uninterrupted run.
    ref_logs = _rows(ref_root / "logs" / "version_0" / "metrics.csv")
    for step, value in {**first_logs, **second_logs}.items():
        assert abs(value - ref_logs[step]) < 1e-6, step
