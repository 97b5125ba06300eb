"""The default study: how the additive margin and the temperature move EER, for SimCLR and MoCo (symmetric loss).

Optuna's seeded TPE over margin in [0, 0.5] and temperature (log scale), starting from the paper's setting
(m = 0.1, tau = 1/30) for both frameworks. On the `cpu` profile it is sized for the embedded corpus on two cores
(under 15 minutes with the corpus built): 6 trials of 5 epochs (160 steps of 64 utterances) on 1 s views, two at a
time. Short views buy steps (twice as many as 2 s views in the same time), and the views are not augmented:
augmentation slows early learning (measured: 35 % vs 21 % EER after 64 steps with noise and reverberation).
The learning rate falls to 0.6x each epoch (2e-3 to 2.6e-4), so a trial ends on a settled encoder: at a constant
rate the EER of one run moved between 15 % and 20 % from epoch to epoch. The budget searches temperatures in
[0.008, 0.04], around the paper's 1/30: in 160 steps high temperatures learn slowly (corpus v3, SimCLR: 18.8 % and
21.4 % EER at tau = 0.115 and 0.145, 16.6 % at 0.012). MoCo's queue holds 256 keys (4 batches), from a key
encoder close to the current one (single runs, MoCo m = 0.1 / 0.40, tau = 1/30 / 0.0105: 15.2 % / 17.2 % EER with
256 keys, 15.1 % / 18.9 % with 1024).
"""

from search_spaces import Budget, Choice, Float, Param, Reference, Study

STUDY = Study(
    name="margin_sweep",
    description="Optuna TPE over margin and temperature for SimCLR and MoCo (symmetric), from the paper's points",
    fixed={"symmetric": True},
    search=(
        Param("framework", Choice(("simclr", "moco"))),
        Param("margin", Float(0.0, 0.5)),
        Param("temperature", Float(0.01, 0.2, log=True)),
    ),
    num_samples=24,
    points_to_evaluate=(
        {"framework": "simclr", "margin": 0.1, "temperature": 1 / 30},
        {"framework": "moco", "margin": 0.1, "temperature": 1 / 30},
    ),
    searcher_seed=1717,
    budgets={"cpu": Budget(fixed={"epochs": 5, "eval_every": 0, "crop_seconds": 1.0, "noise_prob": 0.0,
                                  "reverb_prob": 0.0, "lr": 2e-3, "lr_decay": 0.6, "lr_decay_epochs": 1,
                                  "queue_size": 256},
                           num_samples=6, search=(Param("temperature", Float(0.008, 0.04, log=True)),))},
    references=(
        Reference("A, Table 1", {"framework": "simclr", "symmetric": True, "margin": 0.0, "temperature": 1 / 30}, 8.41, 0.6235),
        Reference("A, Table 1", {"framework": "simclr", "symmetric": True, "margin": 0.05, "temperature": 1 / 30}, 8.35, 0.6098),
        Reference("A, Table 1", {"framework": "simclr", "symmetric": True, "margin": 0.1, "temperature": 1 / 30}, 7.85, 0.6168),
        Reference("A, Table 1", {"framework": "simclr", "symmetric": True, "margin": 0.2, "temperature": 1 / 30}, 8.13, 0.6211),
        Reference("A, Table 2", {"framework": "moco", "margin": 0.0, "temperature": 1 / 30}, 9.59, 0.6974),
        Reference("A, Table 2", {"framework": "moco", "margin": 0.1, "temperature": 1 / 30}, 9.36, 0.6403),
    ),
)
