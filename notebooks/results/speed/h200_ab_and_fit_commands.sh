#!/bin/bash
# Two device calls on one NVIDIA H200 (16 cores; torch 2.11.0+cu130, Lightning 2.6.6,
# torchmetrics 1.9.0: the machine's own), run from the repository root with the wheels that the
# image lacks (jsonargparse, docstring_parser, typeshed_client, torch-fidelity) in .whl/. $OUT is
# the folder whose files came back; the output files were renamed as below.

# ---- call 1 (429 s): h200_engine_vs_plain.json, h200_ddp_bf16_fit.log, h200_ddp_bf16_fit_metrics.csv
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl || exit 1
export PYTHONPATH=/tmp/site:. PYTHONUNBUFFERED=1 GAN_LAB_CACHE=/tmp/glc
# engine vs plain on all four workloads; the 230 s limit cut it off in the penalty-cost section, so
# h200_engine_vs_plain.json holds the engine-vs-plain section only
timeout 230 python3 -m gan_modules.commands.speed --workloads toy,toy_bench,digits,resnet32 --metric_samples 0 \
    --gpu_table eager --json $OUT/h200_engine_vs_plain.json
# (a --fused_adam run here was cut off by its 110 s limit before it wrote anything; call 2 redid it)
# a real CLI fit: DDP over NCCL (one rank), bf16-mixed, SyncBatchNorm, the metrics callback on the GPU
timeout 40 python3 -m gan_modules.cli train-evaluator --dataset digits
timeout 120 python3 -m gan_modules.cli fit --config configs/quickstart.yaml --config configs/metrics/digits_classifier.yaml \
    --trainer configs/trainer/ddp_gpus.yaml --trainer.devices 1 --trainer.sync_batchnorm true --trainer.precision bf16-mixed \
    --trainer.logger configs/logger/csv.yaml --trainer.max_steps 1500 --trainer.default_root_dir /tmp/fit \
    --trainer.enable_progress_bar false > $OUT/fit.log 2>&1
cp /tmp/fit/logs/version_0/metrics.csv $OUT/fit_metrics.csv

# ---- call 2 (284 s, a fresh machine): h200_code_ab.jsonl, h200_images_per_s_eager.jsonl (its printed rows)
# old = commit e08ea7d (the code behind h200.json): git archive e08ea7d gan_modules datamodules | tar -x -C old
for m in new old new old; do
    if [ $m = old ]; then P=old; else P=.; fi
    PYTHONPATH=/tmp/site:$P timeout 45 python3 notebooks/results/speed/h200_code_ab.py $m
done
PYTHONPATH=/tmp/site:. timeout 100 python3 notebooks/results/speed/h200_code_ab.py fused
PYTHONPATH=/tmp/site:. timeout 50 python3 notebooks/results/speed/h200_code_ab.py table
