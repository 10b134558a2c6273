"""`gan-lab evaluate`: the metric set that fits a checkpoint's data, as a table and as JSON.

Images: FID, IS, KID, precision/recall, density/coverage (+ class coverage and intra-FID with a
digit classifier; modes covered and reverse KL on Stacked MNIST). 2D points: modes, hq_pct,
reverse_kl, emd. JSON keys are the names the training callback logs without
its `metrics/` prefix; the protocol (sample counts, split, extractor, weights) goes with them.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import torch

NAME = "evaluate"
HELP = "compute FID/IS/KID/PR/density-coverage (images), Stacked MNIST modes, or mode metrics + EMD (2D)"


def _table(results: dict[str, float], protocol: dict) -> str:
    width = max(len(k) for k in results)
    lines = [f"{k:<{width}}  {v:.6g}" for k, v in results.items()]
    about = f"{protocol['num_fake']} generated vs {protocol['num_real']} real"
    about += f" ({protocol['dataset']} {protocol['real_split']} split)"
    if "extractor" in protocol:
        about += f", features: {protocol['extractor']} [{protocol['extractor_weights']}]"
    return "\n".join([about, *lines])


def main(argv: list[str]) -> int:
    from datamodules import MissingDataError
    from gan_modules.checkpoints import load_datamodule, load_module, read_checkpoint
    from gan_modules.metrics.collective import SingleProcess
    from gan_modules.metrics.extractors import EXTRACTORS, MissingWeightsError
    from gan_modules.metrics.suite import ALL_METRICS, MetricSettings, build_evaluator

    parser = argparse.ArgumentParser(prog=f"gan-lab {NAME}", description=HELP)
    parser.add_argument("--ckpt_path", required=True)
    parser.add_argument("--num", type=int, default=None, help="generated samples (default 10000 images, 2500 points)")
    parser.add_argument("--num_real", type=int, default=None, help="real samples (default as --num, at most all)")
    parser.add_argument("--extractor", default="inception", choices=sorted(EXTRACTORS))
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
    args = parser.parse_args(argv)
    for flag, value in (("--num", args.num), ("--num_real", args.num_real)):
        if value is not None and value < 2:
            parser.error(f"{flag}={value} is invalid; allowed: an integer >= 2")
    device = torch.device(("cuda" if torch.cuda.is_available() else "cpu") if args.device == "auto" else args.device)
    settings = MetricSettings(
        num_fake=args.num,
        num_real=args.num_real,
        extractor=args.extractor,
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
        checkpoint = read_checkpoint(args.ckpt_path)
        module = load_module(args.ckpt_path).to(device)
        dm = load_datamodule(args.ckpt_path)
        evaluator = build_evaluator(dm.kind, settings, device)
        results = evaluator.evaluate(module, dm, SingleProcess())
    except (MissingWeightsError, MissingDataError, FileNotFoundError, ValueError) as err:
        print(f"gan-lab {NAME}: error: {err}", file=sys.stderr)
        return 2
    protocol = evaluator.protocol(dm, module)
    print(_table(results, protocol))
    if args.json:
        out = Path(args.json)
        out.parent.mkdir(parents=True, exist_ok=True)
        payload = {
            **results,
            "protocol": protocol,
            "ckpt_path": str(args.ckpt_path),
            "step": checkpoint.get("global_step"),
        }
        out.write_text(json.dumps(payload, indent=2))
        print(f"gan-lab {NAME}: wrote {out}")
    return 0
