"""Fit a tiny GAN under DDP (gloo, CPU) with the metrics callback, then re-evaluate in one process.

Usage: python ddp_metrics.py --devices N --root DIR [--classifier FILE --mnist_root DIR]
Writes DIR/result.json (rank 0): the callback's last results (computed with N ranks, each drawing
its share of the samples), the same evaluation by one process on the same final weights, and
what the best-checkpoint logic wrote; with a digit classifier, also the classifier metrics
(intra-FID, density/coverage) and the Stacked MNIST modes, by N ranks and by one process. Every
rank also writes DIR/gather_rank<r>.json: `gather_rows` through the trainer's strategy on index
rows, including cases with fewer chunks than ranks.
Lightning's "ddp" strategy re-executes this file for every rank, hence the __main__ guard.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import lightning as L
import torch
from lightning.pytorch.strategies import DDPStrategy

sys.path.insert(0, str(Path(__file__).parent))

import extractor_fixtures

from datamodules import DigitsDataModule, StackedMNISTDataModule
from gan_modules import AdversarialModule
from gan_modules.callbacks.metrics import GenerativeMetrics
from gan_modules.metrics.collective import SingleProcess, StrategyCollective, gather_rows
from gan_modules.metrics.suite import MetricSettings, build_evaluator
from gan_modules.trainers import bare_trainer

GATHER_CASES = [(90, 16), (7, 2), (5, 10), (1, 4)]  # (rows, batch): uneven chunks; one chunk for two ranks


def check_gather_order(coll: StrategyCollective, root: Path) -> None:
    """Rows come back in single-process order; record which chunks this rank produced."""
    results = []
    for rows, batch in GATHER_CASES:
        produced: list[int] = []

        def produce(chunk: int, first: int, k: int, produced: list[int] = produced) -> dict[str, torch.Tensor]:
            produced.append(chunk)
            index = torch.arange(first, first + k, dtype=torch.float64)
            return {"pair": torch.stack([index, -index], 1), "index": index.long()}

        out = gather_rows(produce, rows, batch, coll)
        expected = torch.arange(rows)
        ok = torch.equal(out["index"], expected) and torch.equal(out["pair"][:, 1], -expected.double())
        results.append({"ok": ok, "chunks_here": produced})
    (root / f"gather_rank{coll.rank}.json").write_text(json.dumps(results))


def classes_and_modes(
    model: AdversarialModule, dm: DigitsDataModule, args: argparse.Namespace, coll: StrategyCollective
) -> dict:
    """Classifier-extractor metrics on the trained model and Stacked MNIST modes of a fresh 3-channel one."""
    classifier, cache = args.classifier, str(Path(args.root) / "cache")
    counts = {"num_fake": 90, "num_real": 100, "batch_size": 16}
    features = MetricSettings(extractor="digits-classifier", weights_path=classifier, cache_dir=cache, **counts)
    L.seed_everything(1)  # the same initial weights on every rank
    nets = {"generator": {"arch": "dcgan", "width": 8}, "critic": {"arch": "dcgan", "width": 8}}
    stacked_model = AdversarialModule(loss="non_saturating", data_shape=(3, 8, 8), z_dim=8, **nets)
    stacked_dm = StackedMNISTDataModule(root=args.mnist_root, split="test", download=False, image_size=8, size=200)
    modes = MetricSettings(metrics=["modes"], mode_samples=90, mode_classifier_path=classifier, batch_size=16)
    out = {}
    for name, settings, m, d in (("classes", features, model, dm), ("modes", modes, stacked_model, stacked_dm)):
        ddp = build_evaluator("image", settings).evaluate(m, d, coll)
        single = build_evaluator("image", settings).evaluate(m, d, SingleProcess()) if coll.rank == 0 else None
        out[name] = {"ddp": ddp, "single": single}
    return out


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--devices", type=int, default=2)
    parser.add_argument("--root", required=True)
    parser.add_argument("--classifier", default=None)
    parser.add_argument("--mnist_root", default=None)
    args = parser.parse_args()
    torch.set_num_threads(1)
    root = Path(args.root)
    name = extractor_fixtures.register()
    L.seed_everything(0)
    dm = DigitsDataModule(image_size=8, batch_size=32)
    nets = {"generator": {"arch": "dcgan", "width": 8}, "critic": {"arch": "dcgan", "width": 8}}
    model = AdversarialModule(data_shape=(1, 8, 8), z_dim=8, ema_decay=0.5, **nets)
    # 90 fakes in chunks of 16 (6 chunks, the last one partial); 100 reals (7 chunks): uneven shares
    settings = {"num_fake": 90, "num_real": 100, "extractor": name, "kid_subset_size": 50}
    callback = GenerativeMetrics(every_n_steps=2, batch_size=16, cache_dir=str(root / "cache"), **settings)
    strategy = DDPStrategy(find_unused_parameters=True, process_group_backend="gloo") if args.devices > 1 else "auto"
    trainer = bare_trainer(2, [callback], devices=args.devices, strategy=strategy, default_root_dir=root)
    trainer.fit(model, dm)
    coll = StrategyCollective(trainer.strategy)
    check_gather_order(coll, root)
    extra = classes_and_modes(model, dm, args, coll) if args.classifier else {}
    if trainer.global_rank != 0:
        return
    single = build_evaluator(dm.kind, MetricSettings(batch_size=16, cache_dir=str(root / "cache"), **settings))
    best = callback.best_path(trainer)
    result = {
        "world_size": trainer.world_size,
        "callback": callback.last_results,
        "single_process": single.evaluate(model, dm, SingleProcess()),
        "best_checkpoint": best.is_file() and torch.load(best, weights_only=False)["global_step"],
        "best": callback.best,
        **extra,
    }
    (root / "result.json").write_text(json.dumps(result))


if __name__ == "__main__":
    main()
