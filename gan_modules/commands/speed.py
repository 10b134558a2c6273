"""`gan-lab speed`: engine overhead vs plain PyTorch, penalty costs, minibatch discrimination's
backward, metric throughput, peak memory, and (on CUDA) images/s for DCGAN-32 / ResNet-32 WGAN-GP
across precisions, compile and layouts."""

from __future__ import annotations

import argparse
import os
import platform
import sys
from pathlib import Path
from typing import Any

NAME = "speed"
HELP = "measure engine overhead vs a plain PyTorch loop, penalty costs, metric throughput, memory, GPU images/s"


def _gpu_row_line(row: dict[str, Any]) -> str:
    what = f"{row['arch']} {row['precision']} compile={row['compile']} channels_last={row['channels_last']}"
    value = f"{row['images_per_s']:.0f} images/s" if "images_per_s" in row else row["error"]
    return f"  GPU {what}: {value}"


def _print_report(report: dict[str, Any]) -> None:
    print(f"gan-lab speed on {report['machine']}")
    for row in report["engine_vs_plain"]:
        k = row.get("iterations_per_batch", 1)
        print(
            f"  engine vs plain [{row['workload']} on {row['device']}, batch {row['batch_size']}, "
            f"n_critic {row['n_critic']}{', fused Adam' if row.get('fused_adam') else ''}"
            f"{f', {k} iterations per Lightning batch' if k > 1 else ''}]: "
            f"{row['engine_ms_per_iteration']:.2f} vs {row['plain_ms_per_iteration']:.2f} ms per generator "
            f"iteration -> overhead {row['overhead_pct']:+.1f}% (median of {row['reps']})"
        )
    for row in report["penalty_costs"]:
        costs = ", ".join(
            f"{n} {row['ms_per_critic_step'][n]:.2f} ms ({row['relative_to_wgan'][n]:.2f}x)"
            for n in row["ms_per_critic_step"]
        )
        print(f"  critic step [{row['workload']} on {row['device']}, batch {row['batch_size']}]: {costs}")
    for row in report["fake_graph_cost"]:
        print(
            f"  critic-step fakes [{row['workload']} on {row['device']}, batch {row['batch_size']}]: "
            f"{row['no_grad_ms']:.3f} ms under no_grad vs {row['graph_ms']:.3f} ms with a graph, detached -> "
            f"{row['saved_ms_per_iteration']:.3f} ms saved per generator iteration (n_critic {row['n_critic']}; "
            f"median of {row['samples']})"
        )
    md = report.get("minibatch_similarity")
    if md:
        print(
            f"  minibatch discrimination [cpu, batch {md['batch_size']}, {md['kernels']} kernels of "
            f"{md['kernel_dim']}]: forward + backward {md['layer_ms']:.2f} ms eager ({md['speedup']:.2f}x), "
            f"{md['compiled_ms']:.2f} ms compiled ({md['compiled_speedup']:.2f}x) vs {md['autograd_ms']:.2f} ms by "
            f"autograd through cdist (median of {md['samples']}; gradients differ by "
            f"{md['max_grad_difference']:.1e} / {md['compiled_max_grad_difference']:.1e})"
        )
    metric = report.get("metric_throughput")
    if metric:
        if "error" in metric:
            print(f"  metric throughput: skipped ({metric['error']})")
        else:
            print(
                f"  metrics [{metric['extractor']}, {metric['num_fake']} fake + {metric['num_real']} real, "
                f"{'/'.join(metric['metrics'])}]: callback {metric['callback_cold_s']:.2f} s cold, "
                f"{metric['callback_warm_s']:.2f} s with cached real features; torch-fidelity alone "
                f"{metric['torch_fidelity_s']:.2f} s"
            )
    print(f"  peak RSS {report['peak_rss_mb']:.0f} MiB")
    gpu = report.get("gpu")
    if isinstance(gpu, str):
        print(f"  GPU: {gpu}")
    else:
        print(f"  GPU: {report['gpu_device']}")
        for row in gpu:
            print(_gpu_row_line(row))


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog=f"gan-lab {NAME}", description=HELP)
    parser.add_argument("--json", default=None, help="also write the numbers here")
    parser.add_argument(
        "--workloads", default=None, help="engine/penalty workloads: toy, toy_bench, digits, resnet32 (default: all on "
        "CUDA, toy,toy_bench,digits on CPU)",
    )  # fmt: skip
    parser.add_argument("--reps", type=int, default=7, help="interleaved repetitions (medians are reported)")
    parser.add_argument("--iterations", type=int, default=20, help="generator iterations per repetition")
    parser.add_argument("--critic_steps", type=int, default=20, help="critic steps per repetition (penalty costs)")
    parser.add_argument("--metric_samples", type=int, default=2000, help="generated (and real) images, 0 to skip")
    parser.add_argument("--extractor", default="digits-classifier", help="extractor for the metric throughput")
    parser.add_argument("--weights_path", default=None, help="extractor weights (default: its cache path)")
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's choice)")
    parser.add_argument(
        "--device", default="auto", choices=["auto", "cpu", "cuda"],
        help="device of the engine-vs-plain and penalty measurements (auto: cuda when available)",
    )  # fmt: skip
    parser.add_argument("--fused_adam", action="store_true", help="engine vs plain with fused Adam on both sides")
    parser.add_argument(
        "--iterations_per_batch", type=int, default=1,
        help="the engine's model.iterations_per_batch (generator iterations per Lightning batch)",
    )  # fmt: skip
    parser.add_argument(
        "--gpu_table", default="all", choices=["all", "eager", "none"],
        help="images/s rows on a GPU: all, eager only (compiling takes minutes), or none",
    )  # fmt: skip
    parser.add_argument("--quick", action="store_true", help="tiny sizes, for a smoke test")
    args = parser.parse_args(argv)
    for flag in ("reps", "iterations", "critic_steps"):
        if getattr(args, flag) < 2:
            parser.error(f"--{flag}={getattr(args, flag)} is invalid; allowed: an integer >= 2")

    import logging
    import warnings

    import torch

    from gan_modules.bench import speed
    from gan_modules.paths import write_json

    logging.getLogger("lightning.pytorch").setLevel(logging.ERROR)  # one fit per repetition: keep the report readable
    warnings.filterwarnings("ignore")

    if args.threads:
        torch.set_num_threads(args.threads)
    table = speed.QUICK_WORKLOADS if args.quick else speed.WORKLOADS
    if args.device == "cuda" and not torch.cuda.is_available():
        parser.error("--device=cuda is invalid here: torch sees no CUDA device; allowed: auto, cpu")
    device = args.device if args.device != "auto" else ("cuda" if torch.cuda.is_available() else "cpu")
    default = list(table) if device == "cuda" or args.quick else list(speed.CPU_DEFAULT_WORKLOADS)
    names = [n.strip() for n in args.workloads.split(",") if n.strip()] if args.workloads else default
    if args.iterations_per_batch < 1:
        parser.error(f"--iterations_per_batch={args.iterations_per_batch} is invalid; allowed: an integer >= 1")
    if args.iterations < 2 * args.iterations_per_batch:  # the clock needs two timed batch ends
        parser.error(
            f"--iterations={args.iterations} is invalid with --iterations_per_batch={args.iterations_per_batch}; "
            f"allowed: at least {2 * args.iterations_per_batch}"
        )
    for name in names:
        if name not in table:
            parser.error(f"--workloads={name!r} is unknown; allowed: {', '.join(table)}")

    def save() -> None:  # after every section: a run cut short still leaves what it measured
        if args.json:
            out = Path(args.json)
            out.parent.mkdir(parents=True, exist_ok=True)
            write_json(out, report)

    per_batch = args.iterations_per_batch
    report: dict[str, Any] = {
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, torch {torch.__version__}, "
        f"{torch.get_num_threads()} thread(s)",
        "engine_vs_plain": [
            speed.engine_vs_plain(table[n], args.reps, args.iterations, device, args.fused_adam, per_batch)
            for n in names
        ],
    }
    save()
    report["penalty_costs"] = [speed.penalty_costs(table[n], args.reps, args.critic_steps, device) for n in names]
    report["fake_graph_cost"] = [speed.fake_graph_cost(table[n], args.reps, device) for n in names]
    shape = {k: 4 if args.quick and k != "features" else v for k, v in speed.MINIBATCH_SHAPE.items()}
    report["minibatch_similarity"] = speed.minibatch_similarity_cost(args.reps, **shape)
    report["peak_rss_mb_after_training"] = speed.peak_rss_mb()
    save()
    if args.metric_samples:
        from gan_modules.metrics.extractors import MissingWeightsError

        try:
            metrics = ["fid", "is", "kid"] if args.quick else ["fid", "is", "kid", "pr"]
            report["metric_throughput"] = speed.metric_throughput(
                args.metric_samples, args.extractor, args.weights_path, metrics
            )
        except MissingWeightsError as err:
            report["metric_throughput"] = {"error": str(err).splitlines()[0]}
    report["peak_rss_mb"] = speed.peak_rss_mb()
    save()
    gpu_options = speed.gpu_table_options(args.gpu_table, args.quick)
    if torch.cuda.is_available() and gpu_options is not None:
        report["gpu_device"] = torch.cuda.get_device_name()
        report["gpu"] = []

        def on_row(row: dict[str, Any]) -> None:
            report["gpu"].append(row)
            # compiled rows take minutes: progress on stderr; the report (stdout) lists each row once
            print(f"gan-lab {NAME}: measured {_gpu_row_line(row).strip()}", file=sys.stderr, flush=True)
            save()

        speed.gpu_table("cuda", iterations=args.iterations, on_row=on_row, **gpu_options)
    else:
        report["gpu"] = "skipped: --gpu_table none" if torch.cuda.is_available() else "skipped: no CUDA device"
    _print_report(report)
    save()
    if args.json:
        print(f"gan-lab {NAME}: wrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
