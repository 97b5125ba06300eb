"""The default study: how the additive margin and the temperature move EER, for SimCLR and MoCo (symmetric loss).

Optuna's seeded TPE over margin in [0, 0.5] and temperature (log scale), starting from the paper's setting
(m = 0.1, tau = 1/30) for both frameworks. On the `cpu` profile it is sized for the embedded corpus on two cores
(under 15 minutes with the corpus built): 6 trials of 5 epochs (160 steps of 64 utterances) on 1 s views, two at a
time. Short views buy steps (twice as many as 2 s views in the same time), and the views are not augmented:
augmentation slows early learning (measured: 35 % vs 21 % EER after 64 steps with noise and reverberation).
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
                                  "reverb_prob": 0.0}, num_samples=6)},
    references=(
        Reference("A, Table 1", {"framework": "simclr", "symmetric": True, "margin": 0.0, "temperature": 1 / 30}, 8.41, 0.6235),
        Reference("A, Table 1", {"framework": "simclr", "symmetric": True, "margin": 0.05, "temperature": 1 / 30}, 8.35, 0.6098),
        Reference("A, Table 1", {"framework": "simclr", "symmetric": True, "margin": 0.1, "temperature": 1 / 30}, 7.85, 0.6168),
        Reference("A, Table 1", {"framework": "simclr", "symmetric": True, "margin": 0.2, "temperature": 1 / 30}, 8.13, 0.6211),
        Reference("A, Table 2", {"framework": "moco", "margin": 0.0, "temperature": 1 / 30}, 9.59, 0.6974),
        Reference("A, Table 2", {"framework": "moco", "margin": 0.1, "temperature": 1 / 30}, 9.36, 0.6403),
    ),
)
