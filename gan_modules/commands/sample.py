"""`gan-lab sample`: raw generator samples from a checkpoint, reproducible from a seed."""

from __future__ import annotations

import argparse
import sys

import numpy as np
import torch

from datamodules import to_uint8_images
from gan_modules.checkpoints import load_module
from gan_modules.paths import check_output_file

NAME = "sample"
HELP = "write N generator samples from a checkpoint to an .npz file (keys 'samples' and, if conditional, 'labels')"


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="gan-lab sample", description=HELP)
    parser.add_argument("--ckpt_path", required=True)
    parser.add_argument("--num", type=int, default=1000)
    parser.add_argument("--out", required=True, help="output .npz file")
    parser.add_argument("--seed", type=int, default=0, help="same seed, same samples")
    parser.add_argument(
        "--class", dest="label", type=int, default=None, help="a conditional model's class for every sample"
    )
    args = parser.parse_args(argv)
    if args.num < 1:
        parser.error(f"--num={args.num} is invalid; allowed: an integer >= 1")
    try:
        out = check_output_file("--out", args.out, ".npz")
        module = load_module(args.ckpt_path)
    except (FileNotFoundError, ValueError) as err:
        print(f"gan-lab {NAME}: error: {err}", file=sys.stderr)
        return 2
    classes = getattr(module, "num_classes", 0)
    if args.label is not None and not 0 <= args.label < classes:
        allowed = f"0 .. {classes - 1}" if classes else "no --class (the checkpoint is unconditional)"
        print(f"gan-lab {NAME}: error: --class={args.label} is invalid; allowed: {allowed}", file=sys.stderr)
        return 2
    labels = None if args.label is None else torch.full((args.num,), args.label)
    if classes and labels is None:
        labels = torch.arange(args.num) % classes  # every class in turn
    samples = module.sample(args.num, seed=args.seed, labels=labels).cpu()
    if samples.dim() == 4:  # images: uint8 (N, H, W, C), 0..255
        array = to_uint8_images(samples).permute(0, 2, 3, 1).numpy()
    else:  # points: float32 (N, D) in data units
        array = samples.float().numpy()
    out.parent.mkdir(parents=True, exist_ok=True)
    extra = {} if labels is None else {"labels": labels.numpy()}
    np.savez(out, samples=array, **extra)
    with_labels = " with labels" if extra else ""
    print(f"gan-lab: wrote {len(array)} samples {array.dtype} {array.shape[1:]}{with_labels} -> {out}")
    return 0
