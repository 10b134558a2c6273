"""Studies as in Lucic et al. 2018 ("Are GANs Created Equal?") and Kurach et al. 2019: per
objective a search space, N trials (random, TPE or a grid of fixed points), each trial a normal
`gan-lab fit` in its own folder, kept in an Optuna storage that many workers share."""
