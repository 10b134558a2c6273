"""Does the engine's finite-loss check (`engine._check_finite`, a host sync) explain its GPU overhead?
The engine-vs-plain measurement with the check, without it, and with it again. Made
`h200_finite_check.txt` on an H200 (when the engine still checked every iteration):
    PYTHONPATH=. python notebooks/results/speed/h200_finite_check.py | grep ^diag
"""

import logging
import warnings

from gan_modules import engine
from gan_modules.bench import speed

logging.getLogger("lightning.pytorch").setLevel(logging.ERROR)
warnings.filterwarnings("ignore")
with_check = engine._check_finite
settings = (("with check", with_check), ("no check", lambda *a, **k: None), ("with check again", with_check))
for w in ("digits", "resnet32"):
    for label, check in settings:
        engine._check_finite = check
        r = speed.engine_vs_plain(speed.WORKLOADS[w], 5, 20, "cuda")
        print(
            f"diag {w} {label}: engine {r['engine_ms_per_iteration']:.2f} plain {r['plain_ms_per_iteration']:.2f} ms "
            f"-> {r['overhead_pct']:+.1f}%",
            flush=True,
        )
