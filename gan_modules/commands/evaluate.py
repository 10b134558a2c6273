"""`gan-lab evaluate`: the metric set that fits a checkpoint's data, as a table and as JSON.

Images: FID, IS, KID, precision/recall, density/coverage (+ class coverage and intra-FID with a
digit classifier; modes covered and reverse KL on Stacked MNIST). 2D points: modes, hq_pct,
reverse_kl, emd. JSON keys are the names the training callback logs without
its `metrics/` prefix; the protocol (sample counts, split, extractor, weights) goes with them.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path
from typing import Any

import torch

NAME = "evaluate"
HELP = "compute FID/IS/KID/PR/density-coverage (images), Stacked MNIST modes, or mode metrics + EMD (2D)"


def _table(results: dict[str, float], protocol: dict, drawn: str = "generated") -> str:
    width = max(len(k) for k in results)
    lines = [f"{k:<{width}}  {v:.6g}" for k, v in results.items()]
    if protocol.get("metrics") == ["modes"]:  # Stacked MNIST modes alone read their own sample count, no real set
        about = f"{protocol['mode_samples']} {drawn}"
    else:
        about = f"{protocol['num_fake']} {drawn} vs {protocol['num_real']} real"
    about += f" ({protocol['dataset']} {protocol['real_split']} split)"
    if "extractor" in protocol:
        about += f", features: {protocol['extractor']} [{protocol['extractor_weights']}]"
    return "\n".join([about, *lines])


def json_safe(results: dict[str, float]) -> dict[str, Any]:
    """JSON has no Infinity or NaN: such a value is written as null and listed, as a string, under
    `non_finite` (e.g. reverse_kl is inf when no generated point lies near any mode)."""
    bad = {k: str(v) for k, v in results.items() if not math.isfinite(v)}
    safe: dict[str, Any] = {k: (None if k in bad else v) for k, v in results.items()}
    return {**safe, "non_finite": bad} if bad else safe


def read_results(path: Path) -> dict[str, Any]:
    """A `--json` file with its non-finite values restored (the inverse of `json_safe`)."""
    payload = json.loads(path.read_text())
    payload.update({k: float(v) for k, v in payload.pop("non_finite", {}).items()})
    return payload


def main(argv: list[str]) -> int:
    from datamodules import MissingDataError
    from gan_modules.checkpoints import load_datamodule, load_module, read_checkpoint
    from gan_modules.metrics.collective import SingleProcess
    from gan_modules.metrics.extractors import EXTRACTORS, MissingWeightsError
    from gan_modules.metrics.suite import ALL_METRICS, MetricSettings, RealData, build_evaluator
    from gan_modules.paths import check_output_file, write_json

    parser = argparse.ArgumentParser(prog=f"gan-lab {NAME}", description=HELP)
    parser.add_argument("--ckpt_path", required=True)
    parser.add_argument("--num", type=int, default=None, help="generated samples (default 10000 images, 2500 points)")
    parser.add_argument("--num_real", type=int, default=None, help="real samples (default as --num, at most all)")
    parser.add_argument("--extractor", default=None, choices=sorted(EXTRACTORS), help="images only (default inception)")
    parser.add_argument("--weights_path", default=None, help="local extractor weights (no internet)")
    parser.add_argument(
        "--metrics",
        default=",".join(ALL_METRICS),
        help="comma separated: fid,is,kid,pr,dc,intra_fid,modes (images; modes on Stacked MNIST), modes,emd (points)",
    )
    parser.add_argument("--mode_samples", type=int, default=26_000, help="Stacked MNIST samples (PacGAN: 26000)")
    parser.add_argument("--mode_classifier_path", default=None, help="MNIST classifier for Stacked MNIST modes")
    parser.add_argument("--batch_size", type=int, default=100)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--cache_dir", default=None, help="real-feature cache (default $GAN_LAB_CACHE/stats)")
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:1, ...")
    parser.add_argument("--json", default=None, help="write the results here")
    parser.add_argument(
        "--real",
        action="store_true",
        help="score draws of the checkpoint's training data in place of its generator: each metric's floor",
    )
    args = parser.parse_args(argv)
    for flag, value in (("--num", args.num), ("--num_real", args.num_real)):
        if value is not None and value < 2:
            parser.error(f"{flag}={value} is invalid; allowed: an integer >= 2")
    device = torch.device(("cuda" if torch.cuda.is_available() else "cpu") if args.device == "auto" else args.device)
    settings = MetricSettings(
        num_fake=args.num,
        num_real=args.num_real if args.num_real is not None else args.num,
        extractor=args.extractor or "inception",
        weights_path=args.weights_path,
        metrics=[m.strip() for m in args.metrics.split(",") if m.strip()],
        batch_size=args.batch_size,
        seed=args.seed,
        mode_samples=args.mode_samples,
        mode_classifier_path=args.mode_classifier_path,
        cache_dir=args.cache_dir,
    )
    try:
        settings.validate(prefix="evaluate")
        out = check_output_file("--json", args.json) if args.json else None
        checkpoint = read_checkpoint(args.ckpt_path)
        dm = load_datamodule(args.ckpt_path)
        if dm.kind == "points" and args.extractor is not None:
            raise ValueError(
                f"--extractor={args.extractor!r} is invalid for a checkpoint of 2D points (their metrics use no "
                "features); allowed: no --extractor"
            )
        module = RealData(dm) if args.real else load_module(args.ckpt_path).to(device)
        evaluator = build_evaluator(dm.kind, settings, device)
        results = evaluator.evaluate(module, dm, SingleProcess())
    except (MissingWeightsError, MissingDataError, FileNotFoundError, ValueError) as err:
        print(f"gan-lab {NAME}: error: {err}", file=sys.stderr)
        return 2
    protocol = evaluator.protocol(dm, module)
    print(_table(results, protocol, "real draws" if args.real else "generated"))
    if out is not None:
        out.parent.mkdir(parents=True, exist_ok=True)
        payload = {
            **json_safe(results),
            "protocol": protocol,
            "ckpt_path": str(args.ckpt_path),
            "step": None if args.real else checkpoint.get("global_step"),  # --real scores no generator
        }
        write_json(out, payload)
        print(f"gan-lab {NAME}: wrote {out}")
    return 0
