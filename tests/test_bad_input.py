"""Bad input to every gan-lab command, aimed at an existing run: each fails with exit status 2 and
exactly one line on stderr that names the bad value and what is allowed, and no file of the run (its
config, checkpoints, logs, samples) changes or appears. The expected lines are written out here."""

from __future__ import annotations

from pathlib import Path

import pytest

from gan_modules.cli import main

RUN_STEPS = 4


@pytest.fixture(scope="module")
def existing(tmp_path_factory, make_fit_config) -> Path:
    """A finished 4-iteration toy run under <folder>/run, its config <folder>/run.yaml, and broken inputs."""
    folder = tmp_path_factory.mktemp("existing")
    config = make_fit_config(folder / "run.yaml", folder / "run", trainer={"max_steps": RUN_STEPS})
    assert main(["fit", "--config", str(config)]) == 0
    last = folder / "run" / "checkpoints" / "last.ckpt"
    (folder / "text.ckpt").write_text("not a checkpoint\n")
    (folder / "truncated.ckpt").write_bytes(last.read_bytes()[: last.stat().st_size // 2])
    (folder / "a_file").write_text("")
    (folder / "bad.yaml").write_text("trainer:\n  max_steps: [1\n  foo: 2\n")
    return folder


FIT = ["fit", "--config", "{dir}/run.yaml"]
LAST = "{dir}/run/checkpoints/last.ckpt"
FRESH = "another --trainer.default_root_dir for a fresh run"
M = "--model.init_args."
D = "--data.init_args."
TRUNCATED = "is not a readable checkpoint (truncated or not one: "

# name: (arguments, the start of the one stderr line after "gan-lab[ command]: error: ", its ending)
CASES: dict[str, tuple[list[str], str, str]] = {
    # values that only the run itself used to catch, after it had written its files
    "adam_betas": ([*FIT, f"{M}betas", "[1.5, 0.9]"], "model.betas=(1.5, 0.9) is invalid", "two floats in [0, 1)"),
    "batch_above_data": (
        [*FIT, f"{D}batch_size", "1024"],
        "data.batch_size=1024 is invalid for ring8 (512 samples)",
        "allowed: at most 512",
    ),
    "data_below_batch": (
        [*FIT, f"{D}size", "20"],
        "data.batch_size=32 is invalid for ring8 (20 samples)",
        "at most 20",
    ),
    "resume_other_width": (
        [*FIT, f"{M}generator", "{arch: mlp, hidden: [32, 32]}"],
        f"ckpt_path='{LAST}' does not fit this model: generator.",
        f"is (16, 2) there, (32, 2) here; allowed: a checkpoint of the same networks, or {FRESH}",
    ),
    "resume_other_depth": (
        [*FIT, f"{M}critic", "{arch: mlp, hidden: [16]}"],
        f"ckpt_path='{LAST}' does not fit this model: ",
        FRESH,
    ),
    "max_steps_0": ([*FIT, "--trainer.max_steps", "0"], "trainer.max_steps=0 is invalid", "or -1 for no limit"),
    "max_steps_negative": ([*FIT, "--trainer.max_steps=-5"], "trainer.max_steps=-5 is invalid", "or -1 for no limit"),
    "fp16_on_cpu": (
        [*FIT, "--trainer.precision", "16-mixed"],
        "trainer.precision='16-mixed' is invalid on a CPU",
        "allowed: 32-true, or bf16-mixed to ask for it",
    ),
    # messages
    "misspelled_model_key": (
        [*FIT, f"{M}n_critc", "5"],
        "model.init_args.n_critc: 'n_critc' is not an option of gan_modules.AdversarialModule (did you mean n_critic?)",
        ", iterations_per_batch",
    ),
    "misspelled_data_key": (
        [*FIT, f"{D}sizee", "5"],
        "data.init_args.sizee: 'sizee' is not an option of datamodules.Toy2DDataModule (did you mean size?)",
        "allowed: dataset, size, batch_size, seed",
    ),
    "negative_after_space": (
        [*FIT, f"{M}lr_g", "-1e-4"],
        f"{M}lr_g -1e-4: a value that starts with '-' is read as an option",
        f"write {M}lr_g=-1e-4",
    ),
    "negative_decimal_after_space": (
        [*FIT, f"{M}lr_d", "-.5"],
        "model.lr_d=-0.5 is invalid",
        "a float > 0",
    ),  # argparse reads it
    "yaml_syntax": (
        ["fit", "--config", "{dir}/bad.yaml"],
        "{dir}/bad.yaml:3:6: invalid YAML",
        "expected ',' or ']', but got ':'",
    ),
    # single values
    "n_critic_0": ([*FIT, f"{M}n_critic", "0"], "model.n_critic=0 is invalid", "an integer >= 1"),
    "lr_g_0": ([*FIT, f"{M}lr_g", "0"], "model.lr_g=0.0 is invalid", "a float > 0"),
    "lr_d_negative": ([*FIT, f"{M}lr_d=-1"], "model.lr_d=-1.0 is invalid", "a float > 0"),
    "z_dim_0": ([*FIT, f"{M}z_dim", "0"], "model.z_dim=0 is invalid", "an integer >= 1"),
    "ema_decay_1": ([*FIT, f"{M}ema_decay", "1.0"], "model.ema_decay=1.0 is invalid", "null or a float in [0, 1)"),
    "grad_clip_0": ([*FIT, f"{M}grad_clip", "0"], "model.grad_clip=0.0 is invalid", "null or a float > 0"),
    "g_batch_size_0": ([*FIT, f"{M}g_batch_size", "0"], "model.g_batch_size=0 is invalid", "null or an integer >= 1"),
    "iterations_per_batch_0": (
        [*FIT, f"{M}iterations_per_batch", "0"],
        "model.iterations_per_batch=0 is invalid",
        "an integer >= 1",
    ),
    "penalty_weight_negative": (
        [*FIT, f"{M}regularizers", "[{name: gradient_penalty, weight: -1}]"],
        "model.regularizers.weight=-1 is invalid for gradient_penalty",
        "a float >= 0",
    ),
    "interval_vs_iterations_per_batch": (
        [*FIT, f"{M}iterations_per_batch", "4"],
        "image_grid.every_n_steps=3 is invalid with model.iterations_per_batch=4",
        "a multiple of 4 (the step is checked once per Lightning batch)",
    ),
    "lr_decay_without_max_steps": (
        [*FIT, f"{M}lr_decay", "linear", "--trainer.max_steps=-1"],
        "model.lr_decay='linear' is invalid with trainer.max_steps=-1",
        "or model.lr_decay=none",
    ),
    "dataset_unknown": (
        [*FIT, f"{D}dataset", "ring9"],
        "data.dataset='ring9' is unknown",
        "allowed: ring8, grid25, swissroll",
    ),
    "batch_size_0": ([*FIT, f"{D}batch_size", "0"], "data.batch_size=0 is invalid", "an integer >= 1"),
    "checkpoint_every_0": (
        [*FIT, "--checkpoint.every_n_train_steps", "0"],
        "checkpoint.every_n_train_steps=0 is invalid",
        "an integer >= 1",
    ),
    "image_grid_every_0": (
        [*FIT, "--image_grid.every_n_steps", "0"],
        "image_grid.every_n_steps=0 is invalid",
        "an integer >= 1",
    ),
    "variant_unknown": (
        [*FIT, "--model", "wgan_gpp"],
        "model='wgan_gpp' is unknown",
        "or a config file or class path",
    ),
    "class_path_unknown": (
        [*FIT, "--model", "gan_modules.NoSuchGAN"],
        "model='gan_modules.NoSuchGAN' is unknown",
        "or a config file or class path",
    ),
    # checkpoints given to fit, validate and test
    "fit_ckpt_missing": (
        [*FIT, "--ckpt_path", "{dir}/missing.ckpt"],
        "ckpt_path='{dir}/missing.ckpt' does not exist",
        "does not exist",
    ),
    "fit_ckpt_folder": (
        [*FIT, "--ckpt_path", "{dir}/run"],
        "ckpt_path='{dir}/run' is a folder",
        "allowed: a .ckpt file (e.g. {dir}/run/checkpoints/last.ckpt)",
    ),
    "fit_ckpt_text": ([*FIT, "--ckpt_path", "{dir}/text.ckpt"], f"ckpt_path='{{dir}}/text.ckpt' {TRUNCATED}", ")"),
    "fit_ckpt_truncated": (
        [*FIT, "--ckpt_path", "{dir}/truncated.ckpt"],
        f"ckpt_path='{{dir}}/truncated.ckpt' {TRUNCATED}",
        ")",
    ),
    "validate_ckpt_missing": (
        ["validate", "--config", "{dir}/run.yaml", "--ckpt_path", "{dir}/missing.ckpt"],
        "ckpt_path='{dir}/missing.ckpt' does not exist",
        "exist",
    ),
    "validate_ckpt_truncated": (
        ["validate", "--config", "{dir}/run.yaml", "--ckpt_path", "{dir}/truncated.ckpt"],
        f"ckpt_path='{{dir}}/truncated.ckpt' {TRUNCATED}",
        ")",
    ),
    "test_ckpt_text": (
        ["test", "--config", "{dir}/run.yaml", "--ckpt_path", "{dir}/text.ckpt"],
        f"ckpt_path='{{dir}}/text.ckpt' {TRUNCATED}",
        ")",
    ),
    # sample
    "sample_ckpt_missing": (
        ["sample", "--ckpt_path", "{dir}/missing.ckpt", "--out", "{dir}/s.npz"],
        "--ckpt_path='{dir}/missing.ckpt' does not exist",
        "exist",
    ),
    "sample_ckpt_folder": (
        ["sample", "--ckpt_path", "{dir}/run", "--out", "{dir}/s.npz"],
        "--ckpt_path='{dir}/run' is a folder",
        "allowed: a .ckpt file (e.g. {dir}/run/checkpoints/last.ckpt)",
    ),
    "sample_ckpt_text": (
        ["sample", "--ckpt_path", "{dir}/text.ckpt", "--out", "{dir}/s.npz"],
        f"--ckpt_path='{{dir}}/text.ckpt' {TRUNCATED}",
        ")",
    ),
    "sample_ckpt_truncated": (
        ["sample", "--ckpt_path", "{dir}/truncated.ckpt", "--out", "{dir}/s.npz"],
        f"--ckpt_path='{{dir}}/truncated.ckpt' {TRUNCATED}",
        ")",
    ),
    "sample_out_not_npz": (
        ["sample", "--ckpt_path", LAST, "--out", "{dir}/copy.ckpt"],
        "--out='{dir}/copy.ckpt' is invalid",
        "allowed: a file name ending in .npz",
    ),
    "sample_out_under_a_file": (
        ["sample", "--ckpt_path", LAST, "--out", "{dir}/a_file/s.npz"],
        "--out='{dir}/a_file/s.npz' is invalid",
        "'{dir}/a_file' is a file, not a folder",
    ),
    "sample_out_a_folder": (
        ["sample", "--ckpt_path", LAST, "--out", "{dir}/run.npz/.."],
        "--out='{dir}/run.npz/..' is invalid",
        "a file name ending in .npz",
    ),
    # evaluate
    "evaluate_ckpt_missing": (
        ["evaluate", "--ckpt_path", "{dir}/missing.ckpt"],
        "--ckpt_path='{dir}/missing.ckpt' does not exist",
        "exist",
    ),
    "evaluate_ckpt_folder": (
        ["evaluate", "--ckpt_path", "{dir}/run"],
        "--ckpt_path='{dir}/run' is a folder",
        ".ckpt file (e.g. {dir}/run/checkpoints/last.ckpt)",
    ),
    "evaluate_ckpt_truncated": (
        ["evaluate", "--ckpt_path", "{dir}/truncated.ckpt"],
        f"--ckpt_path='{{dir}}/truncated.ckpt' {TRUNCATED}",
        ")",
    ),
    "evaluate_inception_on_points": (
        ["evaluate", "--ckpt_path", LAST, "--extractor", "inception"],
        "--extractor='inception' is invalid for a checkpoint of 2D points",
        "allowed: no --extractor",
    ),
    "evaluate_json_under_a_file": (
        ["evaluate", "--ckpt_path", LAST, "--json", "{dir}/a_file/e.json"],
        "--json='{dir}/a_file/e.json' is invalid",
        "'{dir}/a_file' is a file, not a folder",
    ),
}


def _files(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.mark.parametrize("case", list(CASES))
def test_bad_input_fails_in_one_line_and_changes_no_file_of_the_run(case, existing, capsys):
    args, starts, ends = (x.replace("{dir}", str(existing)) if isinstance(x, str) else x for x in CASES[case])
    args = [a.replace("{dir}", str(existing)) for a in args]
    before = _files(existing)
    capsys.readouterr()

    code = main(args)
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1, (code, err)
    prefix = "gan-lab: error: " if args[0] in ("fit", "validate", "test") else f"gan-lab {args[0]}: error: "
    assert err[0].startswith(prefix + starts) and err[0].endswith(ends), err[0]
    after = _files(existing)
    assert after.keys() == before.keys()  # no new logger version, config, checkpoint or sample
    assert [name for name in before if after[name] != before[name]] == []  # byte-identical


def test_there_are_at_least_forty_cases():
    assert len(CASES) >= 40


# ------------------------------------------------------------------- records replaced whole or not at all
WRITER = """
import importlib.util, sys
from pathlib import Path
spec = importlib.util.spec_from_file_location("paths", sys.argv[2])  # the module alone: no torch to import
paths = importlib.util.module_from_spec(spec)
spec.loader.exec_module(paths)
write_json, path, i = paths.write_json, Path(sys.argv[1]), 0
while True:  # big records, so that a kill lands inside a write
    write_json(path, {"i": i, "rows": [i] * 200_000})
    i += 1
"""


def test_a_writer_killed_mid_write_leaves_a_whole_record(tmp_path):
    """SIGKILL at a random moment of a stream of ~1 MB `write_json` calls (result.json, evaluate.json
    are written so): the file on disk always parses as one complete record. Written in place, the
    same stream leaves a truncated file here that the next run could not read."""
    import json
    import signal
    import subprocess
    import sys
    import time

    path = tmp_path / "result.json"
    module = Path(__file__).parent.parent / "gan_modules" / "paths.py"
    for delay in (0.05, 0.2, 0.5):
        path.unlink(missing_ok=True)
        proc = subprocess.Popen([sys.executable, "-c", WRITER, str(path), str(module)])
        deadline = time.monotonic() + 120
        while not path.exists() and time.monotonic() < deadline:  # writing is under way
            time.sleep(0.01)
        time.sleep(delay)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        record = json.loads(path.read_text())
        assert record["rows"] == [record["i"]] * 200_000
    assert [p.name for p in tmp_path.iterdir() if not p.name.startswith(".")] == ["result.json"]


def test_a_record_whose_write_fails_keeps_the_former_one(tmp_path):
    from gan_modules.paths import replaced_whole, write_json

    path = tmp_path / "result.json"
    write_json(path, {"status": "ok", "fid": 1.0})
    with pytest.raises(RuntimeError), replaced_whole(path) as handle:
        handle.write('{"status": "fa')
        raise RuntimeError("stopped mid-write")
    assert path.read_text() == '{\n  "status": "ok",\n  "fid": 1.0\n}'
    assert [p.name for p in tmp_path.iterdir()] == ["result.json"]  # no temporary file left behind
