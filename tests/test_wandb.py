"""W&B is `gan-lab fit`'s default tracker; without network or API key it writes a real offline run.

The offline run folder is read back (`read_offline_run` parses the `run-<id>.wandb` file that
`wandb sync` uploads) and compared with independent records of the same run: the `config.yaml`
LightningCLI writes, a CSV logger's `metrics.csv` and the PNG grids the ImageGrid callback writes.
"""

from __future__ import annotations

import csv
import os
import socket
import subprocess
import sys
import threading
from pathlib import Path

import numpy as np
import pytest
import yaml
from conftest import fit_yaml
from PIL import Image
from wandb_offline import read_offline_run

from gan_modules import loggers
from gan_modules.cli import main
from gan_modules.loggers import WandbRunLogger, resolve_mode


@pytest.fixture
def no_wandb_account(monkeypatch, tmp_path):
    """No WANDB_MODE, no API key, an empty netrc: what a fresh cluster node or CI machine has."""
    for var in ("WANDB_MODE", "WANDB_API_KEY", "WANDB_DISABLED", "WANDB_BASE_URL"):
        monkeypatch.delenv(var, raising=False)
    netrc = tmp_path / "netrc"
    netrc.write_text("")
    monkeypatch.setenv("NETRC", str(netrc))


def _csv_metrics(root: Path) -> dict[int, dict[str, float]]:
    with open(next((root / "logs").rglob("metrics.csv"))) as f:
        rows = [r for r in csv.DictReader(f) if r.get("train/critic_loss")]
    return {int(r["step"]): {k: float(v) for k, v in r.items() if k.startswith("train/") and v} for r in rows}


def test_default_logger_writes_an_offline_run_with_config_metrics_and_grids(tmp_path, no_wandb_account, capsys):
    # the W&B logger of configs/defaults.yaml on its own, with its defaults (a CSV logger is added below)
    trainer = {
        "max_steps": 4,
        "logger": {"class_path": "gan_modules.loggers.WandbRunLogger", "init_args": {"save_dir": "."}},
    }
    config = fit_yaml(
        tmp_path / "run.yaml", trainer=trainer, image_grid={"every_n_steps": 2}, data={"init_args": {"batch_size": 16}}
    )
    root = tmp_path / "run"
    args = ["fit", "--config", str(config), "--trainer.default_root_dir", str(root)]
    args += ["--trainer.logger.init_args.group", "seeds", "--trainer.logger.init_args.log_model", "true"]
    args += ["--trainer.logger+=gan_modules.loggers.CSVRunLogger", "--trainer.logger.init_args.save_dir", "."]
    args += ["--trainer.logger.init_args.name", "logs"]
    assert main(args) == 0

    (run_dir,) = (root / "wandb").glob("offline-run-*")  # offline chosen automatically, inside the run root
    assert f"W&B offline  -> {run_dir}  (upload: wandb sync {run_dir})" in capsys.readouterr().out
    run = read_offline_run(run_dir)
    assert run.group == "seeds" and {"AdversarialModule", "ring8"} <= set(run.tags)
    assert run.run_id == (root / "wandb" / "gan_lab_run_id").read_text()  # a restart continues this id

    # the full resolved config, exactly as LightningCLI saved it beside the checkpoints
    saved = yaml.safe_load((root / "config.yaml").read_text())
    for key, value in saved.items():
        assert run.config[key] == value, key
    assert run.config["model"]["init_args"]["n_critic"] == 2

    # every logged metric, at step = generator iterations, equal to the CSV logger's record
    csv_rows = _csv_metrics(root)
    wandb_rows = {
        r["trainer/global_step"]: {k: v for k, v in r.items() if k.startswith("train/")}
        for r in run.history
        if "train/critic_loss" in r
    }
    assert sorted(wandb_rows) == sorted(csv_rows) == [1, 2, 3, 4]
    for step, values in csv_rows.items():
        assert wandb_rows[step].keys() == values.keys()
        for key, value in values.items():
            assert wandb_rows[step][key] == pytest.approx(value, rel=1e-6), (step, key)

    # the sample grids: the same pixels as the PNGs written under <root>/samples
    grids = {r["trainer/global_step"]: r["samples"]["filenames"][0] for r in run.history if "samples" in r}
    assert sorted(grids) == [0, 2, 4]
    for step, name in grids.items():
        logged = np.asarray(Image.open(run_dir / "files" / name).convert("RGB"))
        written = np.asarray(Image.open(root / "samples" / f"step_{step:07d}.png").convert("RGB"))
        assert np.array_equal(logged, written)

    assert run.artifacts == [f"model-{run.run_id}:model"]  # log_model: the best checkpoint, once


def test_mode_is_offline_without_key_or_server_and_online_with_both(no_wandb_account, monkeypatch):
    assert resolve_mode() == "offline"  # no key anywhere
    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]  # bound but not listening: connections are refused
        monkeypatch.setenv("WANDB_API_KEY", "x" * 40)
        monkeypatch.setenv("WANDB_BASE_URL", f"http://127.0.0.1:{port}")
        assert resolve_mode() == "offline"  # a key, but no server
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen()
        monkeypatch.setenv("WANDB_BASE_URL", f"http://127.0.0.1:{server.getsockname()[1]}")
        assert resolve_mode() == "online"
        monkeypatch.delenv("WANDB_API_KEY")
        assert resolve_mode() == "offline"  # a server, but no key: never prompt for a login
    monkeypatch.setenv("WANDB_MODE", "disabled")
    assert resolve_mode() == "disabled"
    assert resolve_mode("offline") == "offline"


def test_an_online_start_that_fails_falls_back_to_an_offline_run(no_wandb_account, monkeypatch, tmp_path):
    """A key and a server that answers, but refuses it (401): the run is still recorded, offline."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(16)

    def refuse_all() -> None:
        while True:
            try:
                conn, _ = server.accept()
            except OSError:  # closed at the end of the test
                return
            conn.recv(65536)
            conn.sendall(b"HTTP/1.1 401 Unauthorized\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
            conn.close()

    threading.Thread(target=refuse_all, daemon=True).start()
    monkeypatch.setenv("WANDB_API_KEY", "x" * 40)
    monkeypatch.setenv("WANDB_BASE_URL", f"http://127.0.0.1:{server.getsockname()[1]}")
    monkeypatch.setenv("WANDB_ERROR_REPORTING", "false")  # no telemetry export to the refusing server
    # W&B's service, if an earlier test started it, retries until the init timeout instead of failing fast
    monkeypatch.setattr(loggers, "INIT_TIMEOUT_S", 5.0)
    try:
        logger = WandbRunLogger(save_dir=str(tmp_path))
        with pytest.warns(UserWarning, match="could not start online"):
            logger.log_metrics({"train/loss": 0.5}, step=3)
        assert logger.mode == "offline"
        logger.finalize("success")
    finally:
        server.close()
    run = read_offline_run(logger.run_dir)
    assert [r["train/loss"] for r in run.history if "train/loss" in r] == [0.5]


def _agent_commands(sweep: dict) -> list[list[str]]:
    """The argv a W&B agent builds from the sweep's `command` (`${args}` -> `--key=value`), one per
    variant; seeds and learning rates at their first grid value."""
    params = sweep["parameters"]
    out = []
    for variant in params["model"]["values"]:
        chosen = {key: (spec["values"][0] if "values" in spec else spec["value"]) for key, spec in params.items()}
        chosen["model"] = variant
        argv = []
        for chunk in sweep["command"]:
            if chunk == "${args}":
                argv += [f"--{key}={value}" for key, value in chosen.items()]
            elif chunk not in ("${env}", "gan-lab"):
                argv.append(chunk)
        out.append(argv)
    return out


def test_sweep_example_drives_gan_lab_fit(tmp_path, monkeypatch, capsys):
    repo = Path(__file__).parent.parent
    sweep = yaml.safe_load((repo / "configs" / "sweeps" / "variant_seed_lr.yaml").read_text())
    assert {"model", "seed_everything", "model.init_args.lr_g", "model.init_args.lr_d"} <= set(sweep["parameters"])
    monkeypatch.chdir(repo)  # the agent runs from the repository root
    commands = _agent_commands(sweep)
    for argv, variant in zip(commands, sweep["parameters"]["model"]["values"], strict=True):
        with pytest.raises(SystemExit) as exit_info:
            main([*argv, "--print_config"])
        assert exit_info.value.code == 0
        printed = yaml.safe_load(capsys.readouterr().out)
        assert printed["model"]["class_path"] == "gan_modules.AdversarialModule"
        objective = yaml.safe_load((repo / "configs" / "model" / f"{variant}.yaml").read_text())["init_args"]
        for key in ("loss", "regularizers", "constraint"):  # the preset's objective
            assert printed["model"]["init_args"][key] == objective.get(key, {"constraint": "none"}.get(key)), key
        assert printed["model"]["init_args"]["lr_g"] == sweep["parameters"]["model.init_args.lr_g"]["values"][0]

    # one real run as the agent starts it, a process of its own: its own folder, W&B under the agent's run id
    env = {**os.environ, "WANDB_SWEEP_ID": "sweep7", "WANDB_RUN_ID": "run7", "OMP_NUM_THREADS": "1"}
    root = tmp_path / "sweeps"
    argv = [*commands[0], "--trainer.max_steps=2", f"--trainer.default_root_dir={root}"]
    done = subprocess.run(
        [sys.executable, "-m", "gan_modules.cli", *argv], cwd=repo, env=env, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr[-3000:]
    run_root = root / "sweep-sweep7" / "run7"
    assert (run_root / "checkpoints" / "last.ckpt").is_file()
    (run_dir,) = (run_root / "wandb").glob("offline-run-*")
    assert read_offline_run(run_dir).run_id == "run7"
