"""Metrics under real multi-process runs (gloo on CPU): same numbers as one process on the same samples."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent / "scripts_metrics"))
import extractor_fixtures

SCRIPTS = Path(__file__).parent / "scripts_metrics"


@pytest.mark.ddp
def test_two_process_ddp_run_gives_the_single_process_metrics(tmp_path):
    env = {**os.environ, "PYTHONWARNINGS": "ignore", "OMP_NUM_THREADS": "1"}
    classifier = extractor_fixtures.digits_classifier(tmp_path)
    mnist_root = extractor_fixtures.digits_as_mnist(tmp_path / "data")
    args = ["--devices", "2", "--root", str(tmp_path), "--classifier", str(classifier), "--mnist_root", str(mnist_root)]
    proc = subprocess.run(
        [sys.executable, str(SCRIPTS / "ddp_metrics.py"), *args],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=400,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads((tmp_path / "result.json").read_text())
    assert result["world_size"] == 2
    ddp, single = result["callback"], result["single_process"]
    assert set(ddp) == {"fid", "is_mean", "is_std", "kid_mean", "kid_std", "precision", "recall", "density", "coverage"}
    assert ddp == pytest.approx(single, rel=1e-6)
    assert result["best_checkpoint"] == 2 and result["best"] == pytest.approx(ddp["fid"])
    # the real features were computed once per extractor, by both ranks together, and cached by rank 0
    assert proc.stderr.count("cached real features ->") == 2

    # a classifier extractor (intra-FID by predicted class, density/coverage) and the Stacked MNIST modes
    classes, modes = result["classes"], result["modes"]
    assert {"intra_fid", "intra_fid_9", "density", "coverage", "classes_covered"} <= set(classes["ddp"])
    assert classes["ddp"] == pytest.approx(classes["single"], rel=1e-6, nan_ok=True)
    assert set(modes["ddp"]) == {"modes", "reverse_kl", "channel_kl", "digit_confidence"}
    assert modes["ddp"] == modes["single"]

    # gather_rows through the DDP strategy: single-process row order, each chunk made by one rank,
    # a rank without chunks only probes chunk 0 for shapes
    ranks = [json.loads((tmp_path / f"gather_rank{r}.json").read_text()) for r in range(2)]
    for case, (rows, batch) in enumerate([(90, 16), (7, 2), (5, 10), (1, 4)]):
        chunks = math.ceil(rows / batch)
        for r, rank in enumerate(ranks):
            assert rank[case]["ok"], (rows, batch, r)
            assert rank[case]["chunks_here"] == (list(range(r, chunks, 2)) or [0])
