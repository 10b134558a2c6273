"""The plain-loop screen of sessions 8 and 9 on grid25 (TUNING.md): the whole-budget WGAN-GP setting
(configs/bench/toy_base.yaml + toy_wgan_gp.yaml + toy_long.yaml + toy_budget.yaml) written as a for
loop, with one change at a time. Real batches are drawn at random from the 100,000-point training
sample, so a seed here is not the engine's seed. Prints one JSON line per run. For example:

    OMP_NUM_THREADS=1 python notebooks/results/toy/screen_s8.py --seed 0 --its 20000 --g_batch 512
"""

import argparse
import copy
import json
import time

import torch

from datamodules.toy2d import MIXTURES, sample_mixture
from gan_modules import losses
from gan_modules.bench.speed import wgan_gp_critic_loss
from gan_modules.draws import Z_PRIORS, draw
from gan_modules.metrics.toy import mode_metrics
from gan_modules.nets import build_critic, build_generator
from gan_modules.runtime import flush_subnormal_floats

HIDDEN = [128, 128, 128]
LR, BETAS, GP_WEIGHT, BATCH, EMA_DECAY, EVAL_SEED = 2e-3, (0.0, 0.9), 1.0, 128, 0.999, 1234


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--its", type=int, default=26000, help="generator iterations (one critic step each)")
    p.add_argument("--n_gen", type=int, default=1, help="generator steps per critic step")
    p.add_argument("--g_batch", type=int, default=BATCH, help="fakes per generator step")
    p.add_argument("--lr_g", type=float, default=LR)
    p.add_argument("--lr_d", type=float, default=LR)
    p.add_argument("--gp_weight", type=float, default=GP_WEIGHT)
    p.add_argument("--decay_pow", type=float, default=1.0, help="learning rates follow (1 - t)^decay_pow")
    p.add_argument("--const", choices=["critic", "generator"], default=None, help="this network's rate does not decay")
    p.add_argument("--sngan", action="store_true", help="spectral-norm critic and --loss instead of WGAN-GP")
    p.add_argument("--loss", default="hinge", help="SNGAN's loss pair (gan_modules.losses.LOSS_PAIRS)")
    p.add_argument("--prior", choices=list(Z_PRIORS), default="normal", help="latent noise distribution")
    p.add_argument("--g_act", default="relu", help="generator activation (gan_modules.nets.mlp.ACTIVATIONS)")
    p.add_argument("--d_act", default="relu", help="critic activation")
    p.add_argument("--threads", type=int, default=1)
    a = p.parse_args()

    flush_subnormal_floats()
    torch.set_num_threads(a.threads)
    torch.manual_seed(a.seed)
    modes, std = MIXTURES["grid25"]
    data = sample_mixture("grid25", 100_000, a.seed)
    gen = build_generator({"arch": "mlp", "hidden": HIDDEN, "activation": a.g_act}, 2, (2,))
    critic = build_critic({"arch": "mlp", "hidden": HIDDEN, "activation": a.d_act, "spectral_norm": a.sngan}, (2,))
    ema = copy.deepcopy(gen).requires_grad_(False)
    opt_d = torch.optim.Adam(critic.parameters(), lr=a.lr_d, betas=BETAS, fused=True)
    opt_g = torch.optim.Adam(gen.parameters(), lr=a.lr_g, betas=BETAS, fused=True)
    decayed = [opt for opt, name in ((opt_d, "critic"), (opt_g, "generator")) if name != a.const]
    schedules = [
        torch.optim.lr_scheduler.LambdaLR(opt, lambda i: max(0.0, 1 - i / a.its) ** a.decay_pow) for opt in decayed
    ]

    def latent(n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        return draw(Z_PRIORS[a.prior], (n, 2), generator)  # the engine's own prior draws

    def evaluate() -> dict[str, float]:
        noise = latent(2500, torch.Generator().manual_seed(EVAL_SEED))
        with torch.no_grad():
            return mode_metrics(ema(noise), modes, std)

    critic_loss, generator_loss = losses.get_loss_pair(a.loss if a.sngan else "wasserstein")
    start, curve = time.time(), {}
    for it in range(a.its):
        real = data[torch.randint(len(data), (BATCH,))]
        fake = gen(latent(BATCH)).detach()
        if a.sngan:
            loss = critic_loss(critic(real), critic(fake))
        else:
            loss = wgan_gp_critic_loss(critic, real, fake, torch.rand(BATCH), a.gp_weight)
        opt_d.zero_grad(set_to_none=True)
        loss.backward()
        opt_d.step()
        critic.requires_grad_(False)
        for _ in range(a.n_gen):
            g_loss = generator_loss(critic(gen(latent(a.g_batch))))
            opt_g.zero_grad(set_to_none=True)
            g_loss.backward()
            opt_g.step()
        critic.requires_grad_(True)
        for schedule in schedules:
            schedule.step()
        with torch.no_grad():
            torch._foreach_lerp_(list(ema.parameters()), list(gen.parameters()), 1 - EMA_DECAY)
        if (it + 1) % 5000 == 0:
            curve[it + 1] = round(evaluate()["hq_pct"], 2)
    print(json.dumps({**vars(a), **evaluate(), "seconds": round(time.time() - start, 1), "hq_curve": curve}))


if __name__ == "__main__":
    main()
