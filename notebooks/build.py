"""Write (and optionally execute) the lecture notebooks; their logic lives in the package.

    python notebooks/build.py             # write the .ipynb files (no outputs)
    python notebooks/build.py --execute   # write and execute them in place (size from GAN_LAB_NOTEBOOK_SIZE)

Each notebook starts with a parameter cell: `GAN_LAB_NOTEBOOK_SIZE` ("full" by default, "small" in
the tests) and `GAN_LAB_NOTEBOOK_OUT` (where figures go). Every computation is a call into
`gan_modules` (the lecture experiments, the bench aggregation); the notebooks only narrate.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

import nbformat
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

HERE = Path(__file__).resolve().parent

PARAMETERS = """\
import os
from pathlib import Path

from IPython.display import Image, display

# "full" reproduces the lecture's numbers in a few CPU minutes; the test suite runs "small".
SIZE = os.environ.get("GAN_LAB_NOTEBOOK_SIZE", "full")
OUT = Path(os.environ.get("GAN_LAB_NOTEBOOK_OUT", "../runs/notebooks"))
print(f"size={SIZE}, figures -> {OUT}")"""


def lecture_cell(name: str, var: str) -> str:
    return f"""\
from gan_modules.lecture import get_experiment

{var} = get_experiment("{name}")(size=SIZE, out_dir=OUT)
display(Image(filename={var}["figure"]))"""


def md(source: str) -> tuple[str, str]:
    return ("md", source)


def code(source: str) -> tuple[str, str]:
    return ("code", source)


NOTEBOOKS: dict[str, list[tuple[str, str]]] = {
    "01_js_vs_emd_and_vanishing_gradients.ipynb": [
        md("""\
# 1. JS vs earth mover's distance, and the vanishing generator gradient

The lecture's first argument for WGAN (Arjovsky et al. 2017, Example 1): when the real and generated
distributions have disjoint supports, the Jensen-Shannon divergence is stuck at log 2 whatever the
distance between them, while the earth mover's distance (EMD, W1) grows with it. A critic trained
with the GAN loss therefore tells the generator nothing about *which way* to move."""),
        code(PARAMETERS),
        md("""\
## Disjoint segments at distance theta

For each separation we train a sigmoid discriminator (its held-out loss gives a JS estimate) and a
WGAN-GP critic (its mean gap estimates W1). The reference column is the exact EMD between the point
clouds (network simplex, POT)."""),
        code(lecture_cell("js-vs-emd", "emd")),
        code("""\
import math

for theta, js, w, exact in zip(emd["theta"], emd["js_estimate"], emd["w_estimate"], emd["exact_emd"], strict=True):
    print(f"theta={theta:4.2f}  JS={js:.3f} (log 2 = {math.log(2):.3f})  critic W={w:.3f}  exact EMD={exact:.3f}")"""),
        md("""\
JS sits near log 2 for every separation > 0; the critic's W estimate follows the exact EMD (slightly
above it: the gradient penalty is soft).

## The generator's gradient while the discriminator wins

Fakes in a blob away from the ring: as the discriminator trains, the gradient the generator receives
through the minimax loss log(1 - D(G(z))) vanishes, the non-saturating -log D(G(z)) keeps it, and
the WGAN-GP critic gives gradients of norm about 1 everywhere between the supports."""),
        code(lecture_cell("vanishing-gradient", "vanish")),
        code("""\
for name in vanish["initial"]:
    print(f"{name:>24}: {vanish['initial'][name]:.3g} before D training -> {vanish['final'][name]:.3g} after")"""),
    ],
    "02_mode_collapse_race.ipynb": [
        md("""\
# 2. The mode-collapse race on 2D mixtures

Every objective (its preset in `configs/model/`) is trained by a real Lightning `Trainer` on the same
mixture and judged with the PacGAN protocol (Lin et al. 2018, Table 1): modes covered, percentage of
high-quality samples (within 3 standard deviations of a mode) and the reverse KL between the
samples' mode histogram and the uniform one. Collapse shows up as few modes and a reverse KL near
log(modes / covered)."""),
        code(PARAMETERS),
        code(lecture_cell("mode-collapse", "race")),
        code("""\
for dataset, rows in race["table"].items():
    print(dataset)
    for model, m in rows.items():
        print(
            f"  {model:>8}: modes {m['modes']:4.0f}  high quality {m['hq_pct']:5.1f}%",
            f" reverse KL {m['reverse_kl']:.3f}",
        )"""),
        md("""\
One seed and a short schedule make a demonstration, not a result. The benchmark
(`gan-lab bench --config configs/bench/toy2d_modes.yaml`, notebook 5) trains WGAN-GP and SNGAN on
these mixtures over 10 seeds with tuned schedules and reports mean ± std."""),
    ],
    "03_lipschitz_clipping_gp_spectral_norm.ipynb": [
        md("""\
# 3. Making the critic Lipschitz: weight clipping, gradient penalty, spectral normalisation

WGAN needs a 1-Lipschitz critic. Weight clipping (Arjovsky et al. 2017) forces it crudely, and the
weights pile up at the clipping bounds (Gulrajani et al. 2017, Fig. 1b). The gradient penalty
constrains the function instead, but only on interpolates between real and fake samples. Spectral
normalisation (Miyato et al. 2018) bounds the gradient norm at every point of the space."""),
        code(PARAMETERS),
        md("## Where the weights go under clipping vs the gradient penalty"),
        code(lecture_cell("clipping-vs-gp", "clip")),
        md("## Gradient-norm maps: where is each critic 1-Lipschitz?"),
        code(lecture_cell("where-lipschitz", "where")),
        code("""\
print(f"spectral-norm certificate (product of layer spectral norms): {where['sn']['certificate']:.4f}")
print(f"fraction of the plane far from every interpolate: {where['elsewhere_fraction_of_plane']:.2f}")"""),
    ],
    "04_ebgan_and_pretraining.ipynb": [
        md("""\
# 4. EBGAN: an autoencoder critic, and pretraining it

In EBGAN (Zhao et al. 2017) the critic is an autoencoder whose reconstruction error is an energy:
low on data, high elsewhere. Because that objective needs no fakes, the critic can be *pretrained*
on real data alone, before any adversarial step (Sec. 2.3). The experiment runs the `ebgan` preset
(`gan_modules.compose.preset("ebgan", critic_pretrain_steps=...)`) under a Lightning Trainer."""),
        code(PARAMETERS),
        code(lecture_cell("ebgan-pretrain", "ebgan")),
        code("""\
for key, value in ebgan.items():
    if isinstance(value, (int, float)):
        print(f"{key}: {value:.4g}")"""),
    ],
    "05_reading_a_benchmark_table.ipynb": [
        md("""\
# 5. Reading a benchmark table

`gan-lab bench` trains every (variant, dataset, seed) of a grid as a normal `gan-lab fit`, evaluates
each run's *final* checkpoint and reports mean ± std over seeds (Lucic et al. 2018, "Are GANs Created
Equal?": the distribution over seeds, never the best run). This notebook reads the committed toy
results (`notebooks/results/toy2d_modes/`) with the same functions that wrote them."""),
        code(PARAMETERS),
        code("""\
import csv

from IPython.display import Markdown

from gan_modules.bench.aggregate import markdown_tables, summarize
from gan_modules.bench.report import table_metrics

RESULTS = Path("results/toy2d_modes")
runs = []
with open(RESULTS / "runs.csv") as f:
    for row in csv.DictReader(f):
        for key, value in row.items():
            if key not in ("variant", "dataset", "status", "resumed") and value != "":
                row[key] = float(value)
        runs.append(row)
print(f"{len(runs)} runs: {sorted({r['variant'] for r in runs})} x {sorted({r['dataset'] for r in runs})}")
metrics = [m for m in table_metrics(runs) if m in ("modes", "hq_pct", "reverse_kl", "emd")]
display(Markdown(markdown_tables(summarize(runs, metrics), metrics)))"""),
        md("""\
## Why mean ± std and not the best seed

Each dot below is one seed. A variant whose best seed covers every mode can still collapse on
others: the mean and the spread say how likely a *new* run is to work, which is what a user needs."""),
        code("""\
import matplotlib.pyplot as plt

datasets = sorted({r["dataset"] for r in runs})
variants = list(dict.fromkeys(r["variant"] for r in runs))
fig, axes = plt.subplots(1, len(datasets), figsize=(5 * len(datasets), 3.5), squeeze=False)
for ax, dataset in zip(axes[0], datasets, strict=True):
    for i, variant in enumerate(variants):
        cell = [r for r in runs if r["dataset"] == dataset and r["variant"] == variant and r["status"] == "ok"]
        values = [r["modes"] for r in cell]
        ax.scatter([i] * len(values), values, alpha=0.6)
    ax.set_xticks(range(len(variants)), variants, rotation=45)
    ax.set_title(f"{dataset}: modes covered, one dot per seed")
fig.tight_layout()
plt.show()"""),
        md("## Curves: metric vs generator iteration, band = ±1 std over seeds"),
        code("""\
for png in sorted(RESULTS.glob("curves_*.png")):
    display(Image(filename=str(png)))
made_by = (RESULTS / "results.md").read_text().split("```")[1]
print("made by:", made_by.removeprefix("bash").strip())"""),
    ],
}


def build(execute: bool = False) -> list[Path]:
    written = []
    for name, cells in NOTEBOOKS.items():
        nb = new_notebook(
            cells=[new_markdown_cell(src) if kind == "md" else new_code_cell(src) for kind, src in cells],
            metadata={"kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"}},
        )
        path = HERE / name
        if execute:
            from nbclient import NotebookClient

            NotebookClient(
                nb, timeout=1800, kernel_name="python3", resources={"metadata": {"path": str(HERE)}}
            ).execute()
        nbformat.write(nb, path)
        written.append(path)
        print(f"wrote {path}")
    return written


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--execute", action="store_true")
    parser.add_argument("--only", default=None, help="build only notebooks whose name contains this")
    args = parser.parse_args()
    if args.only:
        NOTEBOOKS = {k: v for k, v in NOTEBOOKS.items() if args.only in k}
    os.chdir(HERE)
    build(args.execute)
