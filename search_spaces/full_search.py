"""Everything at once: margin, temperature, symmetric or not, SimCLR or MoCo (with its queue and momentum).

Conditional parameters: `symmetric` only for SimCLR, `queue_size` and `momentum` only for MoCo. ASHA stops
trials whose EER trails at epochs grace_period * 3^k, so evaluation must run at those epochs (eval_every).
"""

from search_spaces import Asha, Budget, Choice, Float, Param, Study

STUDY = Study(
    name="full_search",
    description="Optuna over margin, temperature, symmetric, framework (+ MoCo queue/momentum), ASHA on EER",
    fixed={"eval_every": 10},
    search=(
        Param("framework", Choice(("simclr", "moco"))),
        Param("symmetric", Choice((True, False)), when={"framework": "simclr"}),
        Param("margin", Float(0.0, 0.5)),
        Param("temperature", Float(0.01, 0.2, log=True)),
        Param("queue_size", Choice((8192, 16384, 32768)), when={"framework": "moco"}),
        Param("momentum", Float(0.99, 0.9999, log=True), when={"framework": "moco"}),
    ),
    num_samples=64,
    points_to_evaluate=(
        {"framework": "simclr", "symmetric": True, "margin": 0.1, "temperature": 1 / 30},
        {"framework": "moco", "margin": 0.1, "temperature": 1 / 30},
    ),
    searcher_seed=1717,
    early_stopping=Asha(grace_period=10, reduction_factor=3),
    budgets={
        "cpu": Budget(
            fixed={"epochs": 9, "eval_every": 1},
            num_samples=8,
            search=(
                Param("queue_size", Choice((256, 512, 1024)), when={"framework": "moco"}),
                Param("momentum", Float(0.9, 0.999, log=True), when={"framework": "moco"}),
            ),
            early_stopping=Asha(grace_period=1, reduction_factor=3),
        )
    },
)
