"""A NaN loss stops the run before the bad update, naming the iteration and the loss, and leaves the
last good checkpoint; `--nan_guard.policy skip` drops the update, counts it and carries on.

The NaN comes from real data: one NaN row in the training set. Which critic step meets it is known
independently, from the global-batch stream's permutation.
"""

from __future__ import annotations

import csv
from pathlib import Path

import torch
from conftest import CSV_RUN_LOGGER, fit_yaml

from datamodules import Toy2DDataModule
from datamodules.stream import GlobalBatchStream
from gan_modules.cli import main

SCRIPTS = Path(__file__).parent / "scripts"
BATCH, SIZE, BAD_BATCH = 8, 512, 7


def _poison_index() -> int:
    """A row that first appears in global batch BAD_BATCH (n_critic 1: at generator iteration BAD_BATCH)."""
    stream = GlobalBatchStream(Toy2DDataModule(size=SIZE).load(), BATCH, seed=0)  # the order ignores values
    return int(stream.global_indices(BAD_BATCH)[3])


def _write(tmp_path: Path, max_steps: int) -> Path:
    nets = {"generator": {"arch": "mlp", "hidden": [8]}, "critic": {"arch": "mlp", "hidden": [8]}}
    model = {"init_args": {"loss": "non_saturating", "regularizers": None, "n_critic": None, **nets}}
    data = {"class_path": "poisoned_data.PoisonedRing", "init_args": {"size": SIZE, "batch_size": BATCH}}
    data["init_args"]["poison_index"] = _poison_index()
    return fit_yaml(
        tmp_path / "run.yaml",
        trainer={"max_steps": max_steps, "logger": CSV_RUN_LOGGER, "num_sanity_val_steps": None},
        image_grid={"every_n_steps": 1000},
        model=model,
        data=data,
    )


def _finite(state: dict[str, torch.Tensor]) -> bool:
    return all(v.isfinite().all() for v in state.values() if v.is_floating_point())


def test_nan_stops_before_the_update_and_keeps_the_last_good_checkpoint(tmp_path, monkeypatch, capsys):
    monkeypatch.syspath_prepend(str(SCRIPTS))
    root = tmp_path / "run"
    assert main(["fit", "--config", str(_write(tmp_path, 20)), "--trainer.default_root_dir", str(root)]) == 3
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [
        f"gan-lab: stopped: critic loss is nan (non-finite gradient) at generator iteration {BAD_BATCH}; "
        "stopping before the update, the last checkpoint on disk is from before it"
    ]
    last = torch.load(root / "checkpoints" / "last.ckpt", weights_only=False)
    assert last["global_step"] == BAD_BATCH - BAD_BATCH % 2  # the last scheduled checkpoint before the NaN
    assert _finite(last["state_dict"])
    newest = sorted(p.name for p in (root / "checkpoints").glob("step*.ckpt"))[-1]
    assert newest == f"step{last['global_step']:07d}.ckpt"  # nothing written after the NaN


def test_skip_policy_drops_and_counts_the_bad_update(tmp_path, monkeypatch):
    monkeypatch.syspath_prepend(str(SCRIPTS))
    root = tmp_path / "run"
    args = ["fit", "--config", str(_write(tmp_path, 12)), "--trainer.default_root_dir", str(root)]
    assert main([*args, "--nan_guard.policy", "skip"]) == 0
    last = torch.load(root / "checkpoints" / "last.ckpt", weights_only=False)
    assert last["global_step"] == 12 and _finite(last["state_dict"])
    # 12 critic steps see global batches 0..11: exactly one of them holds the NaN row
    assert last["callbacks"]["NonFiniteGuard"] == {"skipped": {"critic": 1, "generator": 0}}
    with open(next((root / "logs").rglob("metrics.csv"))) as f:
        rows = [r for r in csv.DictReader(f) if r.get("train/skipped_steps")]
    skipped = [(int(r["step"]), float(r["train/skipped_steps"])) for r in rows]
    assert skipped == [(BAD_BATCH, 1.0)]
