"""Engine vs plain PyTorch on one H200, for an A/B of two code trees on the same machine
(`h200_ab_and_fit_commands.sh`, part 2).

    python h200_code_ab.py old|new   engine vs plain, digits and toy (5 repetitions each)
    python h200_code_ab.py fused     resnet32 and toy_bench, with torch's per-tensor and fused Adam
    python h200_code_ab.py table     eager images/s rows (`speed.gpu_table`)

"old" is commit e08ea7d (the code behind `h200.json`), put first on PYTHONPATH with
`git archive e08ea7d gan_modules datamodules | tar -x -C old`; "new" is the tree this file is in.
The runs alternated new, old, new, old on one machine. Each result is appended to $OUT/ab.jsonl
(`h200_code_ab.jsonl`).
"""

import json
import logging
import os
import sys
import warnings

from gan_modules.bench import speed

warnings.filterwarnings("ignore")
logging.getLogger("lightning.pytorch").setLevel(logging.ERROR)


def show(tag: str, r: dict) -> None:
    engine, plain = [round(x, 1) for x in r["engine_ms_all"]], [round(x, 1) for x in r["plain_ms_all"]]
    print(
        f"{tag} {r['workload']}: engine {r['engine_ms_per_iteration']:.2f} plain {r['plain_ms_per_iteration']:.2f} ms "
        f"-> {r['overhead_pct']:+.1f}%  engine_all {engine} plain_all {plain}",
        flush=True,
    )
    with open(os.path.join(os.environ["OUT"], "ab.jsonl"), "a") as f:
        f.write(json.dumps({"tag": tag, **r}) + "\n")


mode = sys.argv[1]
print("code", speed.__file__, flush=True)
if mode in ("old", "new"):
    for w in ("digits", "toy"):
        show(mode, speed.engine_vs_plain(speed.WORKLOADS[w], 5, 20, "cuda"))
elif mode == "fused":
    for w, its in (("resnet32", 20), ("toy_bench", 4)):
        for fused in (False, True):
            show(f"fused={fused}", speed.engine_vs_plain(speed.WORKLOADS[w], 4, its, "cuda", fused_adam=fused))
elif mode == "table":
    speed.gpu_table("cuda", iterations=20, compile_modes=(False,), on_row=lambda r: print("row", json.dumps(r)))
