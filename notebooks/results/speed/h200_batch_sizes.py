"""Is the GPU table host-bound at batch 64? The same WGAN-GP rows (eager, channels_last) at batch
64, 256 and 1024. Made `h200_batch_sizes.txt` on an H200:
    PYTHONPATH=. python notebooks/results/speed/h200_batch_sizes.py | grep ^batch
"""

import logging
import warnings

from gan_modules.bench import speed

logging.getLogger("lightning.pytorch").setLevel(logging.ERROR)
warnings.filterwarnings("ignore")
for arch in ("dcgan32", "resnet32"):
    for batch in (64, 256, 1024):
        for precision in ("32-true", "bf16-mixed"):
            r = speed.images_per_second(arch, precision, False, True, "cuda", batch_size=batch, iterations=8, warmup=2)
            print(
                f"batch {arch} b{batch} {precision} channels_last: {r.get('images_per_s', 0):.0f} images/s, "
                f"{r.get('ms_per_generator_iteration', 0):.1f} ms/it, {r.get('cuda_max_allocated_mb', 0):.0f} MiB "
                f"{r.get('error', '')}",
                flush=True,
            )
